"""A ccxt gateway's start against a venue that does not answer at first.

The stand-ins script the venues' own failures on the markets endpoint a start loads
(Binance ``exchangeInfo``, Kraken ``AssetPairs``) and on the candles of the warm-up:
a stall past the client's timeout, a 5xx (Kraken's edge answers HTML), a body cut
short, a throttle.  A start tries such calls ``timing.start_attempts`` times before
it refuses, and names why.
"""

from __future__ import annotations

import pytest

from gateways.base import GatewayStartError
from gateways.testing.harness import ANCHOR_MS, FAST_TIMING, CcxtHarness
from gateways.testing.standin import Fault

STALL = Fault("stall_before", delay=FAST_TIMING.request_timeout_ms / 1000 + 0.3)


def markets_requests(h: CcxtHarness) -> int:
    return sum(1 for r in h.standin.requests if r.path.endswith(("/exchangeInfo", "/AssetPairs")))


async def test_a_start_outlives_a_stall_a_5xx_and_a_torn_body(harness: CcxtHarness) -> None:
    h = harness
    h.standin.script(h.markets_endpoint, STALL)
    h.standin.script(h.markets_endpoint, Fault("error_before"))
    h.standin.script(h.markets_endpoint, Fault("truncated_before"))
    gw = h.gateway(lambda _e: None, trading=False, timing=FAST_TIMING.model_copy(
        update={"start_attempts": 4}))
    await h.connect(gw)
    assert markets_requests(h) == 4  # three failures, then the markets
    assert h.instrument_id in gw.instruments


async def test_a_start_gives_up_after_its_attempts_and_says_why(harness: CcxtHarness) -> None:
    h = harness
    h.standin.script(h.markets_endpoint, Fault("error_before"), times=3)
    gw = h.gateway(lambda _e: None, trading=False)
    with pytest.raises(GatewayStartError, match=rf"cannot start on {h.venue}: \w+ in each of "
                                                r"3 attempts"):
        await h.connect(gw)
    assert markets_requests(h) == FAST_TIMING.start_attempts == 3


async def test_refused_credentials_are_not_tried_again(harness: CcxtHarness) -> None:
    h = harness
    gw = h.gateway(lambda _e: None, bad_credentials=True)
    with pytest.raises(GatewayStartError, match="(?i)credential"):
        await h.connect(gw)
    balance = [r for r in h.standin.requests if r.path.endswith(("/account", "/BalanceEx"))]
    assert len(balance) == 1


async def test_a_warm_up_outlives_a_throttled_history_page(harness: CcxtHarness) -> None:
    h = harness
    h.history(30, end_ms=ANCHOR_MS)
    h.standin.set_clock(ANCHOR_MS + 10_000)
    gw = h.gateway(lambda _e: None, trading=False)
    await h.connect(gw, stream=False)
    h.standin.script(h.history_endpoint, Fault("rate_limit"))
    got = await gw.warm_up_bars(20)
    assert len(got) == 20 and gw.warmup_reports[h.instrument_id].got == 20
    pages = [r for r in h.standin.requests if r.path.endswith(("/klines", "/OHLC"))]
    assert len(pages) >= 2  # the throttled page, then the history
