"""Venue fixtures shared by the gateway tests: a started stand-in harness per venue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateways.testing.alpaca_harness import AlpacaHarness
from gateways.testing.harness import HARNESSES, CcxtHarness


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[CcxtHarness]:
    """Each venue's stand-in and gateway factory in turn (the suite runs once per venue)."""
    h = await HARNESSES[request.param]().start()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def binance() -> AsyncIterator[CcxtHarness]:
    """The Binance stand-in alone, for habits only Binance has."""
    h = await HARNESSES["binance"]().start()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture
async def alpaca() -> AsyncIterator[AlpacaHarness]:
    """The Alpaca stand-in and gateway factory, for habits only Alpaca has."""
    h = await AlpacaHarness().start()
    try:
        yield h
    finally:
        await h.stop()
