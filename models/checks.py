"""Rules every model must keep, as checks a user's test (and the kernel) can run.

* A model subscribes only to its own instruments and to timeframes it was given
  (``models[].timeframe`` plus ``models[].extra_timeframes``): checked when the
  kernel is built, so a session never starts with a model waiting for bars that
  never come.
* ``on_bar`` reads no wall clock and does no I/O: ``run_guarded`` feeds bars with
  ``time.time``, ``open`` and sockets made to fail.
* A model never reads the future: ``lookahead_problem`` feeds the same history
  twice, once with every bar after a cut replaced by garbage, and compares what
  the model said up to the cut.
"""

from __future__ import annotations

import builtins
import math
import random
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from models.base import Model
from trader.core.events import Bar
from trader.core.timeframes import format_timeframe


class ModelRuleBroken(AssertionError):
    """A model broke one of the rules above; the message names the model and the rule."""


def subscription_problems(model: Model, given: Iterable[int]) -> list[str]:
    """What a model asks for that it was not given: other instruments or timeframes."""
    allowed = set(given)
    mine = set(model.instruments)
    out = []
    for inst, tf in model.subscriptions():
        if inst not in mine:
            out.append(f"model {model.name!r} subscribes to instrument {inst!r}, which is not "
                       f"one of its instruments {sorted(mine)}")
        if tf not in allowed:
            names = ", ".join(format_timeframe(t) for t in sorted(allowed))
            out.append(f"model {model.name!r} asks for timeframe {format_timeframe(tf)} of "
                       f"{inst!r}, but was given only {names} (add it to the model's "
                       "extra_timeframes)")
    return out


@contextmanager
def no_clock_no_io(model_name: str) -> Iterator[None]:
    """Make the wall clock, files and sockets raise while a model decides."""

    def refuse(what: str) -> Callable[..., Any]:
        def call(*_a: Any, **_k: Any) -> Any:
            raise ModelRuleBroken(f"model {model_name!r} called {what} in on_bar: models "
                                  "must take time from bars and do no I/O")
        return call

    saved = (time.time, time.time_ns, builtins.open, socket.socket)
    time.time, time.time_ns = refuse("time.time()"), refuse("time.time_ns()")
    builtins.open, socket.socket = refuse("open()"), refuse("socket()")  # type: ignore[misc]
    try:
        yield
    finally:
        time.time, time.time_ns, builtins.open, socket.socket = saved  # type: ignore[misc]


def run_guarded(model: Model, bars: Iterable[Bar]) -> list[tuple[int, Any]]:
    """Feed ``bars`` to ``model`` under ``no_clock_no_io``; (bar ts, answer) where it spoke."""
    out = []
    with no_clock_no_io(model.name):
        for bar in bars:
            answer = model.on_bar(bar)
            if answer:
                out.append((bar.ts, answer))
    return out


def _garbage(bar: Bar, rng: random.Random) -> Bar:
    o, c = rng.uniform(1, 500), rng.uniform(1, 500)
    return msgspec.structs.replace(bar, open=o, high=max(o, c) * 1.01, low=min(o, c) * 0.99,
                                   close=c, volume=rng.uniform(0, 1e6))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def lookahead_problem(make: Callable[[], Model], bars: list[Bar], cut: int) -> str | None:
    """None if a fresh model says the same up to ``cut`` (ns) whatever comes after it.

    ``make`` builds a fresh model; bars opening at or after ``cut`` are replaced by
    random ones in the second run.
    """
    rng = random.Random(7)
    clean = run_guarded(make(), bars)
    spoiled_model = make()
    spoiled = run_guarded(spoiled_model,
                          [_garbage(b, rng) if b.ts_open >= cut else b for b in bars])
    before = [x for x in clean if x[0] <= cut]
    after = [x for x in spoiled if x[0] <= cut]
    if len(before) != len(after) or not all(
        a[0] == b[0] and _same(a[1], b[1]) for a, b in zip(before, after, strict=True)
    ):
        return (f"model {spoiled_model.name!r} reads the future: what it said up to the cut "
                "changed when only later bars changed")
    return None
