"""The in-flight resolver keeps asking by client order id until the venue answers."""

from __future__ import annotations

import asyncio
from typing import Any

from gateways.inflight import NOT_FOUND_REASON, InFlightResolver


class Venue:
    """Answers lookups from a script: "err" raises, None is absent, anything else found."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.asked = 0

    async def lookup(self, coid: str) -> Any:
        self.asked += 1
        answer = self.script.pop(0) if self.script else self.script_end
        if answer == "err":
            raise ConnectionError("venue unreachable")
        return answer

    script_end: Any = None


def make(venue: Venue, **kw: Any) -> tuple[InFlightResolver, list, list]:
    found: list = []
    absent: list = []

    async def on_found(coid: str, o: Any) -> None:
        found.append((coid, o))

    r = InFlightResolver(venue.lookup, on_found, lambda c, why: absent.append((c, why)),
                         gateway="t", initial_s=0.001, max_s=0.004, jitter=0.0, **kw)
    return r, found, absent


async def test_keeps_asking_through_failures_until_found() -> None:
    venue = Venue(["err", "err", "err", {"id": 7}])
    r, found, absent = make(venue, settle_s=0.0)
    r.track("C-1")
    r.track("C-1")  # tracked once
    while r.pending:
        await asyncio.sleep(0.002)
    assert found == [("C-1", {"id": 7})] and absent == []
    assert r.stats.query_errors == 3 and r.stats.unknown == 1 and venue.asked == 4


async def test_absent_only_after_settling_and_consecutive_confirmations() -> None:
    venue = Venue([None, "err", None, None])
    r, found, absent = make(venue, settle_s=0.0, absent_confirmations=2)
    r.track("C-2")
    while r.pending:
        await asyncio.sleep(0.002)
    assert absent == [("C-2", NOT_FOUND_REASON)] and "not re-sent" in NOT_FOUND_REASON
    assert venue.asked == 4  # the error broke the first run of "absent"


async def test_absent_answers_inside_the_settle_window_prove_nothing() -> None:
    venue = Venue([])
    r, _found, absent = make(venue, settle_s=0.05)
    r.track("C-3")
    await asyncio.sleep(0.03)
    assert absent == [] and r.pending == ["C-3"]
    venue.script = [{"id": 1}]
    while r.pending:
        await asyncio.sleep(0.002)
    assert absent == []
    await r.close()


async def test_forget_and_close_stop_resolution() -> None:
    r, found, absent = make(Venue([]), settle_s=10.0)
    r.track("C-4")
    r.track("C-5")
    r.forget("C-4")
    assert r.pending == ["C-5"]
    await r.close()
    assert r.pending == [] and found == [] and absent == []
