"""Emulated order intents on crafted bars: brackets armed one bar after the entry fill,
the trailing-stop rule, targets, timed exits, cooldown, limit entries that expire, and
sizing by quantity or notional."""

from __future__ import annotations

from typing import Any

import pytest

from models.base import Model
from models.intents import Intent
from trader.core.events import Bar, Fill, OrderStatus, OrderType, OrderUpdate, Side
from trader.engine.build import build_engine
from trader.engine.config import AppConfig
from trader.engine.exits import OpenTrade, exit_trigger, trail_level

DAY_NS = 86_400 * 1_000_000_000


class Scripted(Model):
    """Says what the script says at a bar index; nothing otherwise."""

    script: dict[int, Any] = {}

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.i = -1

    def on_bar(self, bar: Bar):
        self.i += 1
        if self.i in self.script:
            return {bar.instrument_id: self.script[self.i]}
        return None


def bar(i: int, o: float, h: float, lo: float, c: float) -> Bar:
    return Bar((i + 1) * DAY_NS, "X", 86_400, i * DAY_NS, o, h, lo, c, 1e9)


def flat(i: int, p: float = 100.0) -> Bar:
    return bar(i, p, p + 0.5, p - 0.5, p)


def run(orders: dict, script: dict[int, Any], bars: list[Bar], gates: dict | None = None,
        prepare=None):
    cfg = AppConfig.model_validate({
        "execution": {"slippage_bps": 0, "commission_bps": 0},
        "instruments": [{"id": "X", "symbol": "X", "venue": "V", "asset_class": "equity",
                         "data": {"path": "x.csv", "timeframe": "1d"}}],
        "models": [{"name": "m", "model": "SmaCross", "budget": 0.5, "instruments": ["X"],
                    "timeframe": "1d", "orders": orders, "gates": gates or {}}],
    })
    model = type("S", (Scripted,), {"script": script})("m", ["X"], "1d")
    engine = build_engine(cfg, models=[model])
    fills: list[Fill] = []
    updates: list[OrderUpdate] = []
    engine.kernel.bus.subscribe(Fill, fills.append)
    engine.kernel.bus.subscribe(OrderUpdate, updates.append)
    if prepare is not None:
        prepare(engine)
    engine.kernel.run(bars)
    return engine, fills, updates


def day(ts: int) -> int:
    return ts // DAY_NS


QTY = {"sizing": {"by": "quantity", "quantity": 10}}


def test_bracket_children_are_armed_one_bar_after_the_entry_fill() -> None:
    bars = [flat(0),
            bar(1, 100, 200, 50, 100),   # entry fills at this open; its range spans both levels
            flat(2),                     # armed: inside both levels
            bar(3, 100, 101, 94, 99),    # low reaches the 5% stop (95): exit decided here
            flat(4, 97), flat(5, 97)]
    engine, fills, _ = run({**QTY, "exits": {"stop_pct": 0.05, "take_profit_pct": 0.2}},
                           {0: 1.0}, bars)
    assert [(day(f.ts), f.side, f.quantity, f.price) for f in fills] == [
        (1, Side.BUY, 10, 100.0),   # the entry, at the open after the decision
        (4, Side.SELL, 10, 97.0),   # the stop, decided on bar 3's close, fills at bar 4's open
    ]
    exit_order = engine.orders[1]
    assert exit_order.reduce_only and exit_order.order_type is OrderType.MARKET
    assert engine.pipeline.reasons == {exit_order.client_order_id: "stop"}


def test_take_profit_and_the_stop_wins_a_bar_that_reaches_both() -> None:
    up = [flat(0), flat(1), flat(2), bar(3, 100, 111, 99, 110), flat(4, 110), flat(5, 110)]
    engine, fills, _ = run({**QTY, "exits": {"stop_pct": 0.05, "take_profit_pct": 0.1}},
                           {0: 1.0}, up)
    assert [day(f.ts) for f in fills] == [1, 4]
    assert list(engine.pipeline.reasons.values()) == ["target"]
    both = [flat(0), flat(1), flat(2), bar(3, 100, 111, 94, 100), flat(4), flat(5)]
    engine, _, _ = run({**QTY, "exits": {"stop_pct": 0.05, "take_profit_pct": 0.1}},
                       {0: 1.0}, both)
    assert list(engine.pipeline.reasons.values()) == ["stop"]


def test_trailing_stop_follows_the_highest_high_of_earlier_bars() -> None:
    t = OpenTrade(side=1, entry_price=100.0, stop=None, target=None, trail_pct=0.1,
                  trail_dist=None, extreme=100.0)
    assert trail_level(t) == pytest.approx(90.0)
    # A bar that makes a new high of 130 and dips to 110: checked against 90 (not 117).
    b = bar(5, 120, 130, 110, 125)
    assert exit_trigger(t, b, None) is None
    t.extreme = 130.0
    assert trail_level(t) == pytest.approx(117.0)
    assert exit_trigger(t, bar(6, 125, 126, 116.9, 120), None) == "trail"
    short = OpenTrade(side=-1, entry_price=100.0, stop=105.0, target=None, trail_pct=None,
                      trail_dist=3.0, extreme=90.0)
    assert trail_level(short) == pytest.approx(93.0)  # tighter than the fixed stop: it rules
    assert exit_trigger(short, bar(7, 92, 93.0, 91, 92), None) == "trail"

    bars = [flat(0), flat(1),                    # entry fills at bar 1's open (100)
            bar(2, 100, 120, 99, 119),           # armed; 99 > 90; high -> 120 (stop 108)
            bar(3, 119, 130, 110, 128),          # 110 > 108; high -> 130 (stop 117)
            bar(4, 128, 129, 116, 118),          # 116 <= 117: trail
            flat(5, 118), flat(6, 118)]
    engine, fills, _ = run({**QTY, "exits": {"trail_pct": 0.1}}, {0: 1.0}, bars)
    assert [(day(f.ts), f.price) for f in fills] == [(1, 100.0), (5, 118.0)]
    assert list(engine.pipeline.reasons.values()) == ["trail"]


def test_atr_multiples_are_fixed_at_entry() -> None:
    # Ranges of 2.0 every bar: ATR(3) = 2 once three bars are in; stop 2 x ATR below entry.
    bars = [flat(i) for i in range(4)] + [
        bar(4, 100, 101, 96.5, 97), bar(5, 97, 98, 95.9, 96), flat(6, 96), flat(7, 96)]
    bars = [bar(i, 100, 101, 99, 100) for i in range(4)] + bars[4:]
    engine, fills, _ = run({**QTY, "exits": {"stop_atr": 2.0, "atr_period": 3}}, {2: 1.0},
                           bars)
    # entry at bar 3's open (100), seen on bar 3 with ATR 2 -> stop 96; bar 4's low 96.5
    # holds; bar 5's low 95.9 hits it; out at bar 6's open.
    assert [(day(f.ts), f.side) for f in fills] == [(3, Side.BUY), (6, Side.SELL)]
    assert list(engine.pipeline.reasons.values()) == ["stop"]


def test_max_holding_time_and_cooldown_before_reentry() -> None:
    bars = [flat(i) for i in range(12)]
    # The model says long again on bars 5 and 6 (inside the cooldown) and 7 (after it).
    script = {0: 1.0, 5: Intent(1.0), 6: 1.0, 7: 0.5}
    engine, fills, _ = run({**QTY, "cooldown_bars": 3, "exits": {"max_bars": 2}}, script, bars)
    got = [(day(f.ts), f.side, f.quantity) for f in fills]
    # in at 1, seen at 1, armed bars 2 and 3 -> timeout decided at 3, out at 4; bars 4-6
    # cool down; the 0.5 at 7 enters 5 units at 8, which time out on bar 10, out at 11.
    assert got == [(1, Side.BUY, 10), (4, Side.SELL, 10), (8, Side.BUY, 5),
                   (11, Side.SELL, 5)]
    assert list(engine.pipeline.reasons.values()) == ["timeout", "timeout"]


def test_intent_price_levels_override_the_policy() -> None:
    bars = [flat(0), flat(1), flat(2), bar(3, 100, 101, 97.5, 98), flat(4, 98), flat(5, 98)]
    engine, fills, _ = run({**QTY, "exits": {"stop_pct": 0.01}},
                           {0: Intent(1.0, stop_price=97.0)}, bars)
    assert len(fills) == 1  # 97.5 is under the policy's 99 but above the intent's 97
    engine, fills, _ = run({**QTY, "exits": {"stop_pct": 0.01}},
                           {0: Intent(1.0, stop_price=98.0)}, bars)
    assert [day(f.ts) for f in fills] == [1, 4]


def test_limit_entry_waits_at_its_price_and_expires() -> None:
    bars = [flat(0), flat(1), flat(2), flat(3), bar(4, 100, 100, 90, 95), flat(5)]
    policy = {**QTY, "entry": {"type": "limit", "limit_offset_bps": 300, "expiry_bars": 2}}
    engine, fills, updates = run(policy, {0: 1.0}, bars)
    (entry,) = engine.orders
    assert entry.order_type is OrderType.LIMIT and entry.limit_price == 97.0
    assert fills == []  # bar 4 would have reached it, but the order expired at bar 2
    assert [(u.client_order_id, u.status) for u in updates][-1] == (
        entry.client_order_id, OrderStatus.CANCELED)
    # The model's next signal re-applies (the expired entry is not re-sent by itself).
    assert engine.allocator.targets["m"]["X"] == 0.0
    engine, fills, _ = run({**policy, "entry": {**policy["entry"], "expiry_bars": 5}},
                           {0: 1.0}, bars)
    assert [(day(f.ts), f.price) for f in fills] == [(4, 97.0)]


def test_sizing_by_notional_and_a_minimum_trade_size() -> None:
    bars = [flat(0), flat(1), flat(2, 100), flat(3, 100), flat(4)]
    by_notional = {"sizing": {"by": "notional", "notional": 2_500}}
    engine, fills, _ = run(by_notional, {0: 1.0, 2: 1.02}, bars)
    # 2 500 / 100 = 25 units; the 2% resize is 0.5 unit, below the lot: not traded.
    assert [f.quantity for f in fills] == [25]
    engine, fills, _ = run({**by_notional, "min_trade_value": 3_000}, {0: 1.0}, bars)
    assert fills == [] and engine.orders == []


def test_gates_sit_between_the_model_and_the_orders() -> None:
    bars = [flat(i) for i in range(8)]
    engine, fills, _ = run(QTY, {0: 1.0, 5: 0.0}, bars, gates={"persistence": 3})
    # Long said at 0, released at 2 (three bars standing), filled at 3; the exit said at 5
    # goes at once and fills at 6.
    assert [(day(f.ts), f.side) for f in fills] == [(3, Side.BUY), (6, Side.SELL)]


def test_every_emulated_exit_passes_the_risk_engine() -> None:
    checked: list[str] = []

    def spy(engine) -> None:
        real = engine.risk.check

        def check(request, **kw):
            checked.append(request.client_order_id)
            return real(request, **kw)

        engine.risk.check = check

    bars = [flat(0), flat(1), flat(2), bar(3, 100, 101, 94, 99), flat(4, 97), flat(5, 97)]
    engine, fills, _ = run({**QTY, "exits": {"stop_pct": 0.05}}, {0: 1.0}, bars, prepare=spy)
    assert len(engine.orders) == 2 and [o.client_order_id for o in engine.orders] == checked


def test_native_stop_goes_to_the_venue_from_the_bar_after_the_entry() -> None:
    bars = [flat(0),
            bar(1, 100, 200, 50, 100),   # entry fills at this open; the child is not sent yet
            flat(2),                     # the stop rests at the venue from here
            bar(3, 99, 99.5, 94, 96),    # the stop (95) trades inside the bar, at 95
            flat(4, 96), flat(5, 96)]
    policy = {**QTY, "native": True, "exits": {"stop_pct": 0.05, "take_profit_pct": 0.2}}
    engine, fills, _ = run(policy, {0: 1.0}, bars)
    assert [(day(f.ts), f.side, f.price) for f in fills] == [
        (1, Side.BUY, 100.0), (3, Side.SELL, 95.0)]
    entry, stop = engine.orders
    assert (stop.order_type, stop.stop_price, stop.reduce_only) == (OrderType.STOP, 95.0, True)
    assert stop.ts == bars[1].ts  # decided on the entry bar's close: live from bar 2
    # The stop's fill is the model's: its book is flat and nothing buys back.
    assert engine.portfolio.model_book("m").quantity("X") == 0
    assert engine.pipeline.reasons == {stop.client_order_id: "stop"}


def test_an_emulated_target_cancels_the_native_stop() -> None:
    bars = [flat(0), flat(1), flat(2), bar(3, 100, 121, 99, 120), flat(4, 120),
            bar(5, 120, 120, 90, 95), flat(6, 95)]
    policy = {**QTY, "native": True, "exits": {"stop_pct": 0.05, "take_profit_pct": 0.2}}
    engine, fills, updates = run(policy, {0: 1.0}, bars)
    entry, stop, exit_ = engine.orders
    assert stop.order_type is OrderType.STOP and exit_.order_type is OrderType.MARKET
    assert [(day(f.ts), f.price) for f in fills] == [(1, 100.0), (4, 120.0)]
    # Bar 5 falls through 95: the stop was cancelled when the target fired on bar 3.
    assert (stop.client_order_id, OrderStatus.CANCELED) in [
        (u.client_order_id, u.status) for u in updates]
    assert engine.pipeline.reasons[exit_.client_order_id] == "target"


def test_native_needs_a_gateway_that_declares_stop_orders() -> None:
    from gateways.base import GatewayCapabilities
    from trader.engine.config import ConfigError

    cfg = AppConfig.model_validate({
        "instruments": [{"id": "X", "symbol": "X", "venue": "V", "asset_class": "equity",
                         "data": {"path": "x.csv", "timeframe": "1d"}}],
        "models": [{"name": "m", "model": "SmaCross", "budget": 0.5, "instruments": ["X"],
                    "gateway": "plain", "orders": {"native": True,
                                                   "exits": {"stop_pct": 0.05}}}],
    })

    class Plain:
        name = "plain"
        capabilities = GatewayCapabilities()  # market and limit only

        def bind(self, sink) -> None:
            pass

    with pytest.raises(ConfigError, match="models.0.orders.native: gateway 'plain' does not "
                                          "declare stop orders"):
        build_engine(cfg, mode="paper", gateways={"plain": Plain()})
