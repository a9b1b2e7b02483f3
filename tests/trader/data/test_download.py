"""Downloads into the catalog through a real ccxt gateway against the venues' loopback stand-ins.

The gateway is built by the registry from a config section, as ``trader data
download`` builds it, and the download sees only its ``history`` method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateways import registry
from gateways.base import GatewayContext
from gateways.testing.harness import FAST_TIMING, HARNESSES, CcxtHarness, candle
from gateways.testing.standin import Fault
from trader.core.timeframes import NS
from trader.data.catalog import Catalog, ts_ns
from trader.data.download import download

HOUR_MS = 3_600_000
DAY0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
CLOSED = 48  # hourly bars closed when the venue's clock reads 2024-01-03T00:30Z
PAGE = 10


@pytest.fixture(params=sorted(HARNESSES))
async def venue(request: pytest.FixtureRequest):
    h = await HARNESSES[request.param]().start()
    # 48 closed hourly candles and the forming one (which must never be stored)
    h.standin.set_series(h.venue_id, [candle(DAY0_MS + i * HOUR_MS, 100.0 + i)
                                      for i in range(CLOSED + 1)])
    h.standin.set_clock(DAY0_MS + CLOSED * HOUR_MS + 30 * 60_000)
    try:
        yield h
    finally:
        await h.stop()


async def gateway(h: CcxtHarness):
    section = {"exchange": h.venue, "symbols": {h.symbol: h.instrument_id}, "timeframe": "1h",
               "urls": h.standin.urls(), "rate_limit": False,
               "timing": FAST_TIMING.model_copy(update={"history_page_limit": PAGE}).model_dump()}
    gw = registry.build(h.venue, section, GatewayContext(trading=False))
    await gw.connect(stream=False)
    return gw


def ohlc_requests(h: CcxtHarness) -> list:
    return [r for r in h.standin.requests if "klines" in r.path or "OHLC" in r.path]


async def test_download_fills_the_catalog_with_closed_bars_only(venue: CcxtHarness,
                                                                tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    key = cat.key(venue.venue, venue.instrument_id, "1h")
    gw = await gateway(venue)
    try:
        res = await download(gw, cat, key, venue.instrument_id, DAY0_MS * 1_000_000,
                             chunk_bars=16, now_ns=lambda: venue.standin.now_ms() * 1_000_000)
    finally:
        await gw.close()
    ts = ts_ns(cat.read(key))
    assert res.added == CLOSED == len(ts)
    assert ts[0] == DAY0_MS * 1_000_000
    assert (np.diff(ts) == 3600 * NS).all()  # no gap, no duplicate
    closes = cat.read(key).column("close").to_pylist()
    assert closes == [101.0 + i for i in range(CLOSED)]  # candle(): close = base + 1
    man = cat.manifest(key)
    assert man is not None and man.rows == CLOSED and man.source == f"download:{venue.venue}"
    assert man.last == "2024-01-02T23:00:00Z" and cat.verify(key) is None
    assert len(ohlc_requests(venue)) >= CLOSED // PAGE  # the gateway paginated


async def test_an_interrupted_download_resumes_after_the_last_stored_bar(
        venue: CcxtHarness, tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    key = cat.key(venue.venue, venue.instrument_id, "1h")
    endpoint = "klines" if venue.venue == "binance" else "OHLC"
    chunks: list[int] = []

    def fail_after_first_chunk(done: int, total: int) -> None:
        chunks.append(done)
        if len(chunks) == 1:  # the venue starts refusing every request
            venue.standin.script(endpoint, Fault("rate_limit"), 1000)

    gw = await gateway(venue)
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the venue's error type is
            await download(gw, cat, key, venue.instrument_id, DAY0_MS * 1_000_000,
                           chunk_bars=20, retries=1, backoff_s=0.01,
                           progress=fail_after_first_chunk,
                           now_ns=lambda: venue.standin.now_ms() * 1_000_000)
    finally:
        await gw.close()
    stored = ts_ns(cat.read(key))
    assert len(stored) == 20  # the first chunk was kept
    venue.standin.faults.clear()
    seen = len(ohlc_requests(venue))
    gw = await gateway(venue)
    try:
        res = await download(gw, cat, key, venue.instrument_id, DAY0_MS * 1_000_000,
                             chunk_bars=20, now_ns=lambda: venue.standin.now_ms() * 1_000_000)
    finally:
        await gw.close()
    assert res.resumed_from == int(stored[-1]) and res.added == CLOSED - 20
    ts = ts_ns(cat.read(key))
    assert len(ts) == CLOSED and (np.diff(ts) == 3600 * NS).all()
    # the second run asked the venue only for bars after the last stored one
    first = ohlc_requests(venue)[seen].params
    since_ms = int(first.get("startTime") or int(first["since"]) * 1000)
    assert since_ms >= stored[-1] // 1_000_000 - HOUR_MS


async def test_a_rate_limited_chunk_is_retried(venue: CcxtHarness, tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    key = cat.key(venue.venue, venue.instrument_id, "1h")
    endpoint = "klines" if venue.venue == "binance" else "OHLC"
    venue.standin.script(endpoint, Fault("rate_limit"), 1)
    gw = await gateway(venue)
    try:
        res = await download(gw, cat, key, venue.instrument_id, DAY0_MS * 1_000_000,
                             backoff_s=0.01, now_ns=lambda: venue.standin.now_ms() * 1_000_000)
    finally:
        await gw.close()
    assert res.added == CLOSED and len(ts_ns(cat.read(key))) == CLOSED
