"""Builders shared by the risk tests: configs, engines, bars, orders and a scripted model."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from scripted_model import Scripted  # noqa: F401 -- the risk tests take it from here

from trader.core.events import Bar, Fill, OrderRequest, OrderType, Side
from trader.engine.build import Engine, build_engine
from trader.engine.config import AppConfig

NS = 1_000_000_000
MIN = 60 * NS
T0 = 1_700_000_040 * NS  # a whole minute

INSTRUMENTS: list[dict[str, Any]] = [
    {"id": "AAA", "symbol": "AAA", "venue": "X", "asset_class": "equity", "tick_size": 0.01,
     "lot_step": 1, "min_quantity": 1},
    {"id": "BBB", "symbol": "BBB", "venue": "X", "asset_class": "equity", "tick_size": 0.01,
     "lot_step": 1, "min_quantity": 1},
    {"id": "BTC", "symbol": "BTC/USD", "venue": "X", "asset_class": "crypto", "tick_size": 0.01,
     "lot_step": 0.001, "min_quantity": 0.001, "min_notional": 10},
    {"id": "EUR", "symbol": "EUR/USD", "venue": "X", "asset_class": "fx", "tick_size": 0.00001,
     "lot_step": 1000, "min_quantity": 1000},
]


def make_config(risk: dict[str, Any] | None = None, *, models: list[dict] | None = None,
                instruments: list[dict] | None = None, cash: float = 100_000.0,
                costs: bool = False) -> AppConfig:
    insts = [dict(i, data={"path": f"{i['id']}.parquet", "timeframe": "1m"})
             for i in (instruments or INSTRUMENTS)]
    execution = {} if costs else {"slippage_bps": 0, "commission_bps": 0, "fee_per_order": 0}
    return AppConfig.model_validate({
        "name": "risk-test",
        "portfolio": {"initial_cash": cash},
        "execution": execution,
        "instruments": insts,
        "models": models or [],
        "risk": risk or {},
    })


def bar(inst: str, ts: int, close: float, open_: float | None = None, tf: int = 60) -> Bar:
    o = close if open_ is None else open_
    return Bar(ts, inst, tf, ts - tf * NS, o, max(o, close), min(o, close), close, 1.0)


def priced_engine(risk: dict[str, Any] | None = None,
                  prices: dict[str, float] | None = None, **kw: Any) -> Engine:
    """An engine with no models whose instruments have a bar at ``T0``."""
    cfg = make_config(risk, **kw)
    engine = build_engine(cfg, models=[])
    prices = prices if prices is not None else {"AAA": 100.0, "BBB": 100.0, "BTC": 10_000.0,
                                                 "EUR": 1.0}
    engine.kernel.run([bar(i, T0, p) for i, p in sorted(prices.items())])
    return engine


_fills = iter(range(1, 1_000_000))


def hold(engine: Engine, inst: str, qty: float, price: float | None = None) -> None:
    """Give the account a position through a real fill event (no order behind it)."""
    px = price if price is not None else engine.portfolio.marks[inst]
    n = next(_fills)
    engine.portfolio.on_fill(Fill(engine.kernel.clock.now(), f"seed-{n}", f"t-{n}", inst,
                                  Side.BUY if qty > 0 else Side.SELL, abs(qty), px, 0.0))


_coids = iter(range(1, 1_000_000))


def order(inst: str, side: str, qty: float, *, ts: int = T0, limit: float | None = None,
          stop: float | None = None, reduce_only: bool = False, gateway: str = "sim",
          coid: str | None = None) -> OrderRequest:
    otype = OrderType.LIMIT if limit is not None else (
        OrderType.STOP if stop is not None else OrderType.MARKET)
    return OrderRequest(ts, coid or f"t-{next(_coids)}", inst, Side(side), qty, otype, limit,
                        stop, reduce_only, gateway)




def path_bars(inst: str, closes: Iterable[float], start: int = T0) -> Iterator[Bar]:
    """One-minute bars whose open is the previous close (no gaps)."""
    prev = None
    for k, c in enumerate(closes):
        yield bar(inst, start + k * MIN, c, prev)
        prev = c
