"""The risk engine: every order passes ``check`` before it may reach a gateway.

``check`` runs the pre-trade rules of ``risk.checks`` in a fixed order and
answers approve, scale (to a smaller quantity) or reject, with a reason code.
Every answer other than a plain approval is published on the bus as an
``OrderRiskEvent``, logged and counted.  ``on_bar`` (subscribed right after the
portfolio) drives drawdown control and polls the kill switch.

The engine is built by ``trader.replay.backtest.build_engine`` with the keyword
arguments ``cfg, portfolio, instruments, clock, bus, allocator, router`` and is
then given the model runner with ``attach`` so that de-risking can re-plan
through the normal pipeline (whose orders pass ``check`` again).
"""

from __future__ import annotations

import csv
from collections import Counter, deque
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import msgspec
import structlog

from risk.checks import (
    NS,
    Breach,
    check_class_exposure,
    check_duplicate,
    check_gross_leverage,
    check_instrument,
    check_instrument_exposure,
    check_max_notional,
    check_net_exposure,
    check_order_rate,
    check_price_band,
    check_stale,
)
from risk.config import OnBreach, RiskConfig
from risk.drawdown import DrawdownAction, DrawdownMonitor
from risk.events import (
    DrawdownEvent,
    KillSwitchChanged,
    OrderRiskEvent,
    RiskDirective,
    TradingStateChanged,
)
from risk.killswitch import KillSwitch, KillSwitchRecord, backend_from_config
from risk.reasons import RiskReason
from risk.state import TradingState, TradingStateMachine, state_breach
from trader.core.bus import EventBus
from trader.core.clock import Clock
from trader.core.events import Bar, OrderRequest, Side, Timer, ns_to_iso
from trader.core.instruments import Instrument

log = structlog.get_logger(__name__)

_MAX_EVENTS_KEPT = 100_000
_LOG_FIRST = 20  # decisions of one reason logged in full before thinning out
_LOG_EVERY = 1000


class PortfolioView(Protocol):
    """What risk reads of the portfolio (``trader.engine.portfolio.Portfolio``)."""

    nav: float
    marks: dict[str, float]
    last_bar_ts: dict[str, int]
    account: Any  # ``.positions``: instrument id -> position with ``quantity``
    fill_listeners: list[Any]
    gross: float
    position_values: dict[str, float]
    class_gross: dict[str, float]

    def net_exposure(self) -> float: ...


class WorkingOrders(Protocol):
    """What risk reads of the working orders (``trader.engine.router.Router``)."""

    def open_quantity(self, instrument_id: str) -> float: ...

    @property
    def open_quantities(self) -> dict[str, float]: ...


class RiskAction(StrEnum):
    APPROVE = "approve"
    SCALE = "scale"
    REJECT = "reject"


class RiskDecision(msgspec.Struct, frozen=True):
    """The answer to one order: approve, scale to ``quantity``, or reject with a reason."""

    action: RiskAction
    quantity: float = 0.0
    reason: str = ""
    detail: str = ""


EVENT_COLUMNS = [
    "ts", "kind", "client_order_id", "instrument_id", "side", "quantity", "action",
    "allowed_quantity", "reason", "detail",
]


class RiskEngine:
    """Pre-trade checks, trading state, drawdown control and the kill switch of one account.

    Without a portfolio (``RiskEngine()``) there is nothing to check against and
    the engine approves everything; that form exists for unit tests of other
    components only.
    """

    def __init__(
        self,
        config: RiskConfig | None = None,
        portfolio: PortfolioView | None = None,
        orders: WorkingOrders | None = None,
        instruments: Mapping[str, Instrument] | None = None,
        *,
        clock: Clock | None = None,
        bus: EventBus | None = None,
        intervals: Mapping[str, int] | None = None,
        kill_switch: KillSwitch | None = None,
        armed: bool = True,
    ) -> None:
        config = config if config is not None else RiskConfig()
        self.config = config
        self.portfolio = portfolio
        self.router = orders
        self.instruments = dict(instruments or {})
        self.clock = clock
        self.bus = bus
        self.enabled = config.enabled and portfolio is not None and clock is not None
        if portfolio is not None and not config.enabled:
            log.warning("risk_engine_disabled", detail="every order is approved unchecked")
        # Before READY nothing is watched or acted on (warm-up bars are history).
        self.armed = armed
        # Instruments whose feed went quiet: orders that would grow them are refused.
        self.stale: set[str] = set()
        self.budget_scale = 1.0

        ks_cfg = config.kill_switch
        if kill_switch is None:
            kill_switch = KillSwitch(backend_from_config(ks_cfg.backend, ks_cfg.path), clock,
                                     who="risk-engine")
        self.kill_switch = kill_switch
        kill_switch.listeners.append(self._on_kill_switch)
        self._poll_ns = int(ks_cfg.poll_seconds * NS) if ks_cfg.backend != "memory" else None
        self._last_poll: int | None = None
        if bus is not None and self._poll_ns is not None and self.enabled:
            # Subscribed while the engine is built, i.e. before the gateways: a switch
            # engaged between two bars cancels working orders before they can fill.
            bus.subscribe(Bar, self._poll_kill_switch)
            bus.subscribe(Timer, self._poll_kill_switch)

        self.states = TradingStateMachine()
        self.states.listeners.append(self._on_state_change)
        dd = config.drawdown
        self.drawdown = DrawdownMonitor(dd.trigger, dd.halt, portfolio.nav if portfolio else 0.0,
                                        dd.restore_at)
        if portfolio is not None:
            portfolio.fill_listeners.append(self._on_fill)

        # Per-instrument facts looked up on every check.
        # Bar length per instrument (the live feed's when it has one); learned from bars else.
        self._interval = dict(intervals or {})
        self._learn_intervals = any(i not in self._interval for i in self.instruments)
        self._meta = {
            iid: (inst, inst.multiplier, inst.asset_class.value)
            for iid, inst in self.instruments.items()
        }
        self._class_limits = dict(config.asset_class_exposure.limits)
        self._class_on_breach = config.asset_class_exposure.on_breach
        self._cap_instrument = (config.instrument_exposure.limit,
                                config.instrument_exposure.on_breach)
        self._cap_gross = (config.gross_leverage.limit, config.gross_leverage.on_breach)
        self._cap_net = (config.net_exposure.limit, config.net_exposure.on_breach)

        price = config.price
        self._band = price.band
        self._stale_bars = price.stale_bars
        self._max_notional = (config.max_order_notional.limit,
                              config.max_order_notional.on_breach)
        self._per_second = config.order_rate.per_second
        self._per_minute = config.order_rate.per_minute
        self._rate_on = self._per_second is not None or self._per_minute is not None
        self._constraints = config.instrument_constraints
        self._sent_second: dict[str, deque[int]] = {}
        self._sent_minute: dict[str, deque[int]] = {}
        self._last_same: dict[tuple[str, bool, float], int] = {}
        dup = config.duplicate.window_seconds
        self._dup_ns = int(dup * NS) if dup is not None else None

        self.counts: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.events: list[Any] = []
        self.events_dropped = 0
        self._first_ts: int | None = None
        self._bar_setup_pending = True
        if self.kill_switch.engaged and self.enabled:
            log.warning("kill_switch_engaged_at_start", reason=self.kill_switch.record.reason
                        if self.kill_switch.record else "")

    # -- READY ------------------------------------------------------------------------
    def arm(self, ts: int) -> None:
        """Start watching and acting (a session's READY; a replay is armed from the start).

        Drawdown is measured from here on, against the restored high-water mark; a
        kill switch or halt that is already on is acted on now (cancel, flatten).
        """
        if self.armed:
            return
        self.armed = True
        if self.portfolio is not None:
            self.drawdown.observe(self.portfolio.nav)
        if self.enabled and (self.kill_switch.engaged or self.state is TradingState.HALTED):
            self._direct(ts, "halt" if self.state is TradingState.HALTED else "kill_switch",
                         cancel_open=True, flatten=self._flatten_on_stop())

    @property
    def state(self) -> TradingState:
        return self.states.state

    def _working(self) -> WorkingOrders:
        """The working orders, which every check that counts them needs."""
        router = self.router
        assert router is not None, "risk checks exposure against working orders: no router"
        return router

    # -- the pre-trade check -----------------------------------------------------------
    def check(self, order: OrderRequest, *, flatten: bool = False) -> RiskDecision:
        """Approve, scale down or reject ``order``; every non-approval is an event.

        ``flatten``: the order is the pipeline's flattening after a halt or kill
        switch, the only thing those let through (and only while it reduces).
        """
        if not self.enabled:
            return RiskDecision(RiskAction.APPROVE, order.quantity)
        # Time is the order's own stamp (the deciding event), never the wall clock:
        # a replay of a session's journal must reach the same decisions.
        now = order.ts
        inst_id = order.instrument_id
        meta = self._meta.get(inst_id)
        if meta is None:
            return self._reject(order, Breach(RiskReason.UNKNOWN_INSTRUMENT,
                                              f"unknown instrument {inst_id!r}"), now)
        inst, mult, asset_class = meta
        pf = self.portfolio
        assert pf is not None  # ``enabled`` implies a portfolio
        qty = order.quantity
        buy = order.side is Side.BUY
        p = pf.account.positions.get(inst_id)
        pos = p.quantity if p is not None else 0.0
        own = flatten
        # Exposure already committed: the position plus what is still working.
        cur_q = pos if own else pos + self._working().open_quantity(inst_id)
        reduces = cur_q != 0.0 and buy != (cur_q > 0) and qty <= abs(cur_q) * (1 + 1e-9)

        if self.kill_switch.engaged and not own:
            return self._reject(order, Breach(RiskReason.KILL_SWITCH, self._kill_detail()), now)
        if inst_id in self.stale and not reduces and not own:
            return self._reject(order, Breach(RiskReason.STALE_DATA,
                                              f"no recent bar for {inst_id}"), now)
        state = self.states.state
        if state is not TradingState.ACTIVE:
            reason = state_breach(state, reduces, own)
            if reason is not None:
                return self._reject(order, Breach(reason, f"trading state is {state.value} "
                                                          f"({self.states.reason})"), now)
        if order.reduce_only and not reduces:
            return self._reject(order, Breach(
                RiskReason.REDUCE_ONLY_INVALID,
                f"reduce-only {order.side.value} {qty} against position {pos} "
                f"and working {cur_q - pos}"), now)
        if own:
            return RiskDecision(RiskAction.APPROVE, qty)

        mark = pf.marks.get(inst_id)
        sent_price = order.limit_price
        if sent_price is None:
            sent_price = order.stop_price
        stale_bars = self._stale_bars
        if stale_bars is not None or mark is None:
            b = check_stale(pf.last_bar_ts.get(inst_id) if mark is not None else None, now,
                            self._interval.get(inst_id, 60), stale_bars or 1_000_000_000)
            if b is not None:
                return self._reject(order, b, now)
        assert mark is not None  # check_stale refuses an instrument with no price yet
        if self._band is not None and sent_price is not None:
            b = check_price_band(sent_price, mark, self._band)
            if b is not None:
                return self._reject(order, b, now)
        ref = sent_price if sent_price is not None else mark
        if self._constraints:
            b = check_instrument(inst, qty, ref, sent_price is not None)
            if b is not None:
                return self._reject(order, b, now)

        unit = ref * mult
        binding: Breach | None = None
        limit, on_breach = self._max_notional
        if limit is not None:
            b = check_max_notional(qty, unit, limit)
            if b is not None:
                if on_breach is OnBreach.REJECT:
                    return self._reject(order, b, now)
                qty, binding = b.fit, b
        if not reduces:
            b2 = self._exposure_caps(inst_id, asset_class, qty if buy else -qty, unit)
            if b2 is not None:
                b, on_breach = b2
                if on_breach is OnBreach.REJECT:
                    return self._reject(order, b, now)
                qty, binding = b.fit, b

        if binding is not None:
            qty = inst.round_quantity(qty)
            problem = inst.constraint_violation(qty, ref, check_tick=False) if qty > 0 else (
                "nothing fits")
            if problem is not None:
                return self._reject(order, Breach(binding.reason, f"{binding.detail}; scaled "
                                                                  f"quantity: {problem}"), now)

        dup_ns = self._dup_ns
        if dup_ns is not None:
            key = (inst_id, buy, qty)
            b = check_duplicate(self._last_same.get(key), now, dup_ns)
            if b is not None:
                return self._reject(order, b, now)
        if self._rate_on:
            sec, minute = self._rate_windows(order.gateway, now)
            b = check_order_rate(len(sec), len(minute), self._per_second, self._per_minute)
            if b is not None:
                return self._reject(order, b, now)
            sec.append(now)
            minute.append(now)
        if dup_ns is not None:
            self._remember(key, now)

        if binding is None:
            return RiskDecision(RiskAction.APPROVE, qty)
        self._emit_order(order, RiskAction.SCALE, qty, binding, now)
        return RiskDecision(RiskAction.SCALE, qty, binding.reason.value, binding.detail)

    def _exposure_caps(
        self, inst_id: str, asset_class: str, delta_q: float, unit: float
    ) -> tuple[Breach, OnBreach] | None:
        """Run the exposure caps in turn, each on what is left of the order after the last.

        Working orders may fill in any order, or not at all, so each instrument
        counts at the worse of "position" and "position + working": a sell still
        working frees no room for a buy elsewhere until it has filled.
        """
        pf = self.portfolio
        assert pf is not None  # only reached from ``check``, which needs one
        nav = pf.nav
        marks = pf.marks
        values = pf.position_values
        # Filled exposure comes from the portfolio's running totals; only the
        # instruments with working orders (few) are visited, so a check costs the
        # same however many positions are open.
        gross = pf.gross
        net_hi = net_lo = pf.net_exposure()
        class_gross = pf.class_gross.get(asset_class, 0.0)
        cur_p = cur_c = values.get(inst_id, 0.0)  # this instrument: filled, filled + working
        meta = self._meta
        for iid, w in self._working().open_quantities.items():
            if not w:
                continue
            _, m, ac = meta[iid]
            e_p = values.get(iid, 0.0)
            e_c = e_p + w * marks.get(iid, 0.0) * m
            # Plain comparisons rather than abs/max/min calls: this loop is on the order path.
            a_p = e_p if e_p >= 0.0 else -e_p
            a_c = e_c if e_c >= 0.0 else -e_c
            if a_c > a_p:
                gross += a_c - a_p
                if ac == asset_class:
                    class_gross += a_c - a_p
            if e_c > e_p:
                net_hi += e_c - e_p
            else:
                net_lo += e_c - e_p
            if iid == inst_id:
                cur_c = e_c
        two = cur_p != cur_c
        worst_here = max(abs(cur_p), abs(cur_c))
        delta = delta_q * unit
        sign = 1.0 if delta_q > 0 else -1.0
        result: tuple[Breach, OnBreach] | None = None

        limit, on_breach = self._cap_instrument
        if limit is not None:
            b = check_instrument_exposure(cur_p, delta, nav, limit, unit)
            if two:
                b = _tighter(b, check_instrument_exposure(cur_c, delta, nav, limit, unit))
            if b is not None:
                if on_breach is OnBreach.REJECT:
                    return b, on_breach
                result, delta = (b, on_breach), sign * b.fit * unit
        limit = self._class_limits.get(asset_class)
        if limit is not None:
            on_breach = self._class_on_breach
            others = class_gross - worst_here
            b = check_class_exposure(asset_class, others + abs(cur_p), cur_p, delta, nav, limit,
                                     unit)
            if two:
                b = _tighter(b, check_class_exposure(asset_class, others + abs(cur_c), cur_c,
                                                     delta, nav, limit, unit))
            if b is not None:
                if on_breach is OnBreach.REJECT:
                    return b, on_breach
                result, delta = (b, on_breach), sign * b.fit * unit
        limit, on_breach = self._cap_gross
        if limit is not None:
            others = gross - worst_here
            b = check_gross_leverage(others + abs(cur_p), cur_p, delta, nav, limit, unit)
            if two:
                b = _tighter(b, check_gross_leverage(others + abs(cur_c), cur_c, delta, nav,
                                                     limit, unit))
            if b is not None:
                if on_breach is OnBreach.REJECT:
                    return b, on_breach
                result, delta = (b, on_breach), sign * b.fit * unit
        limit, on_breach = self._cap_net
        if limit is not None:
            b = check_net_exposure(net_hi if delta > 0 else net_lo, delta, nav, limit, unit)
            if b is not None:
                if on_breach is OnBreach.REJECT:
                    return b, on_breach
                result = (b, on_breach)
        return result

    def _rate_windows(self, gateway: str, now: int) -> tuple[deque[int], deque[int]]:
        sec = self._sent_second.get(gateway)
        if sec is None:
            sec = self._sent_second[gateway] = deque()
            self._sent_minute[gateway] = deque()
        minute = self._sent_minute[gateway]
        while sec and now - sec[0] >= NS:
            sec.popleft()
        while minute and now - minute[0] >= 60 * NS:
            minute.popleft()
        return sec, minute

    def _remember(self, key: tuple[str, bool, float], now: int) -> None:
        last = self._last_same
        last[key] = now
        if len(last) > 10_000:
            window = self._dup_ns or 0
            for k in [k for k, ts in last.items() if now - ts > window]:
                del last[k]

    def _kill_detail(self) -> str:
        rec = self.kill_switch.record
        return f"kill switch engaged: {rec.reason} (by {rec.who})" if rec else "kill switch engaged"

    # -- non-approvals -------------------------------------------------------------------
    def _reject(self, order: OrderRequest, breach: Breach, now: int) -> RiskDecision:
        self._emit_order(order, RiskAction.REJECT, 0.0, breach, now)
        return RiskDecision(RiskAction.REJECT, 0.0, breach.reason.value, breach.detail)

    def _emit_order(self, order: OrderRequest, action: RiskAction, allowed: float,
                    breach: Breach, now: int) -> None:
        reason = breach.reason.value
        self.counts[reason] += 1
        self.actions[action.value] += 1
        event = OrderRiskEvent(now, order.client_order_id, order.instrument_id, order.side.value,
                               order.quantity, action.value, allowed, reason, breach.detail)
        self._record(event)
        n = self.counts[reason]
        # Every decision is an event and counted; the log shows the first few of
        # each reason and then every thousandth, so a model hammering a halted
        # engine cannot flood the journal.
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            logger = log.warning if action is RiskAction.REJECT else log.info
            logger("risk_order_" + ("rejected" if action is RiskAction.REJECT else "scaled"),
                   client_order_id=order.client_order_id, instrument=order.instrument_id,
                   side=order.side.value, quantity=order.quantity, allowed=allowed,
                   reason=reason, detail=breach.detail, ts=ns_to_iso(now), count=n,
                   **({"note": f"further '{reason}' decisions are logged every {_LOG_EVERY}th"}
                      if n == _LOG_FIRST else {}))

    def _record(self, event: Any) -> None:
        if len(self.events) < _MAX_EVENTS_KEPT:
            self.events.append(event)
        else:
            self.events_dropped += 1
        if self.bus is not None:
            self.bus.publish(event)

    # -- bars, fills, drawdown -------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        """After the portfolio has marked this bar: watch drawdown (once armed)."""
        # One flag guards the rare work (disabled or unarmed engine, first bar, intervals
        # still being learned) so the common bar pays a single attribute test for it.
        if self._bar_setup_pending:
            if not self.enabled or not self.armed:
                return
            if self._first_ts is None:
                self._first_ts = bar.ts
                self.states.start(bar.ts)
                if self.kill_switch.engaged:
                    # Engaged before the first bar (a replay's flag file): whatever the
                    # account holds is flattened from here on.
                    self._direct(bar.ts, "kill_switch", cancel_open=True,
                                 flatten=self._flatten_on_stop())
            if self._learn_intervals:
                if bar.instrument_id not in self._interval:
                    self._interval[bar.instrument_id] = bar.timeframe
            else:
                self._bar_setup_pending = False
        # Runs on every bar: a comparison against a precomputed floor, nothing more.
        pf = self.portfolio
        assert pf is not None  # past the setup above only when enabled, i.e. with a portfolio
        nav = pf.nav
        mon = self.drawdown
        if nav <= mon.floor or nav >= mon.ceiling:
            action = mon.update(nav)
            if action is not None:
                self._on_drawdown(action, bar.ts)
        elif nav > mon.peak:
            mon.observe(nav)

    def _poll_kill_switch(self, event: Bar | Timer) -> None:
        """Read the persisted switch at most every ``poll_seconds`` of event time."""
        ts = event.ts
        last = self._last_poll
        poll_ns = self._poll_ns
        assert poll_ns is not None  # subscribed only with a polling interval
        if last is None or ts - last >= poll_ns:
            self._last_poll = ts
            self.kill_switch.poll()

    def _on_fill(self, fill: Any, realized: float) -> None:  # noqa: ARG002
        pf = self.portfolio
        assert pf is not None  # a listener of the portfolio's fills only
        if self.armed:
            self.drawdown.observe(pf.nav)

    def _on_drawdown(self, action: DrawdownAction, ts: int) -> None:
        mon = self.drawdown
        pf = self.portfolio
        assert pf is not None  # drawdown is watched only with a portfolio
        detail = f"drawdown {mon.last:.2%} from peak {mon.peak:,.2f} (NAV {pf.nav:,.2f})"
        if action is not DrawdownAction.HALT:
            factor = self.config.drawdown.derisk_factor if action is DrawdownAction.DERISK else 1.0
            self.budget_scale = factor
            self._record(DrawdownEvent(ts, action.value, mon.last, pf.nav, mon.peak, factor))
            self.counts[f"drawdown_{action.value}"] += 1
            log.warning(f"risk_drawdown_{action.value}", detail=detail, budget_scale=factor,
                        ts=ns_to_iso(ts))
            self._direct(ts, action.value, budget_scale=factor)
            return
        self._record(DrawdownEvent(ts, action.value, mon.last, pf.nav, mon.peak,
                                   self.budget_scale))
        self.counts["drawdown_halt"] += 1
        self.halt("drawdown_halt", detail)

    # -- state changes -----------------------------------------------------------------------
    def halt(self, reason: str, detail: str = "") -> None:
        """Go HALTED and engage the kill switch, then direct: cancel open orders, flatten.

        The state change and the kill switch come first: their listeners persist
        the halt (flag file, store) before any order is cancelled or sent.
        """
        ts = self._now()
        self.states.change(TradingState.HALTED, ts, reason, detail)
        if not self.kill_switch.engaged:
            self.kill_switch.engage(f"{reason}: {detail}" if detail else reason, who="risk-engine")
        self._direct(ts, "halt", cancel_open=True, flatten=True, reason=reason)

    def reduce_only(self, reason: str) -> None:
        """Let only orders that shrink exposure through (from ACTIVE)."""
        if self.states.state is TradingState.HALTED:
            raise ValueError("trading is HALTED: resume first, then reduce")
        self.states.change(TradingState.REDUCING, self._now(), reason)

    def resume(self, reason: str) -> None:
        """Explicitly return to ACTIVE; drawdown is measured again from the current NAV."""
        if not reason.strip():
            raise ValueError("a reason is required to resume trading")
        was_halted = self.states.state is TradingState.HALTED
        if self.states.change(TradingState.ACTIVE, self._now(), reason) and was_halted:
            if self.portfolio is not None:
                self.drawdown.rebase(self.portfolio.nav)
            if not self.kill_switch.engaged:
                self._direct(self._now(), "release", stop_flatten=True, reason=reason)

    def _on_kill_switch(self, record: KillSwitchRecord) -> None:
        ts = self._now()
        self._record(KillSwitchChanged(ts, record.engaged, record.reason, record.who))
        self.counts["kill_switch_engaged" if record.engaged else "kill_switch_released"] += 1
        log.warning("kill_switch_" + ("engaged" if record.engaged else "released"),
                    reason=record.reason, who=record.who, ts=ns_to_iso(ts))
        if not self.enabled or not self.armed:
            return  # acted on at ``arm``
        if record.engaged:
            if self.states.state is not TradingState.HALTED:
                # A halt directs its own cancel and flatten, once: not a second time here.
                self._direct(ts, "kill_switch", cancel_open=True,
                             flatten=self._flatten_on_stop(), reason=record.reason)
            return
        if self.states.state is TradingState.HALTED:
            self.resume(f"kill switch released: {record.reason}")
        else:
            self._direct(ts, "release", stop_flatten=True, reason=record.reason)

    def _on_state_change(self, event: TradingStateChanged) -> None:
        self._record(event)
        log.warning("risk_trading_state", previous=event.previous, state=event.state,
                    reason=event.reason, detail=event.detail, ts=ns_to_iso(event.ts))

    def _flatten_on_stop(self) -> bool:
        return self.config.kill_switch.flatten or self.states.state is TradingState.HALTED

    def _direct(self, ts: int, kind: str, *, budget_scale: float | None = None,
                cancel_open: bool = False, flatten: bool = False, stop_flatten: bool = False,
                reason: str = "") -> None:
        if self.bus is not None:
            self.bus.publish(RiskDirective(ts, kind, budget_scale, cancel_open, flatten,
                                           stop_flatten, reason))

    def _now(self) -> int:
        return self.clock.now() if self.clock is not None else 0

    # -- what survives a restart -----------------------------------------------------------------
    def state_snapshot(self) -> dict[str, Any]:
        """What a later session must restore: state, high-water mark, budget scale."""
        return {
            "state": self.states.state.value,
            "state_reason": self.states.reason,
            "drawdown_peak": self.drawdown.peak,
            "derisked": self.drawdown.derisked,
            "halted": self.drawdown.halted,
            "budget_scale": self.budget_scale,
            "kill_switch": self.kill_switch.engaged,
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Take back a ``state_snapshot`` at start-up, before any bar.

        A restored halt is acted on (cancel, flatten) when the engine is armed.
        """
        self.drawdown.peak = float(snapshot["drawdown_peak"])
        self.drawdown.derisked = bool(snapshot["derisked"])
        self.drawdown.halted = bool(snapshot["halted"])
        self.drawdown.refresh_floor()
        self.budget_scale = float(snapshot["budget_scale"])
        if self.budget_scale != 1.0:
            self._direct(self._now(), "restored", budget_scale=self.budget_scale)
        state = TradingState(snapshot["state"])
        if state is not TradingState.ACTIVE:
            self.states.change(state, self._now(), str(snapshot.get("state_reason", "restored")))
        if state is TradingState.HALTED and self.armed:
            self._direct(self._now(), "halt", cancel_open=True, flatten=True, reason="restored")

    def summary(self) -> dict[str, Any]:
        """Counts by reason and time in each trading state, for metrics.json."""
        end = self._now()  # a replay's clock stands at its last event
        durations = self.states.durations(end)
        total = sum(durations.values())
        return {
            "enabled": self.enabled,
            "state": self.states.state.value,
            "kill_switch_engaged": self.kill_switch.engaged,
            "budget_scale": self.budget_scale,
            "counts_by_reason": dict(sorted(self.counts.items())),
            "counts_by_action": dict(sorted(self.actions.items())),
            "events": len(self.events) + self.events_dropped,
            "time_in_state": {
                s.value: {"seconds": durations[s] / NS,
                          "fraction": durations[s] / total if total else 0.0}
                for s in TradingState
            },
        }

    def write_events_csv(self, path: Path) -> None:
        """One row per risk event, in the order they happened."""
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(EVENT_COLUMNS)
            for ev in self.events:
                w.writerow(event_row(ev))


def _tighter(a: Breach | None, b: Breach | None) -> Breach | None:
    """Of two breaches of one cap, the one that leaves the least room."""
    if a is None:
        return b
    if b is None:
        return a
    return a if a.fit <= b.fit else b


def event_row(ev: Any) -> list[str]:
    """A risk event as a row of ``EVENT_COLUMNS``."""
    ts = ns_to_iso(ev.ts)
    if isinstance(ev, OrderRiskEvent):
        return [ts, "order", ev.client_order_id, ev.instrument_id, ev.side, repr(ev.quantity),
                ev.action, repr(ev.allowed_quantity), ev.reason, ev.detail]
    if isinstance(ev, TradingStateChanged):
        return [ts, "state", "", "", "", "", f"{ev.previous}->{ev.state}", "", ev.reason,
                ev.detail]
    if isinstance(ev, DrawdownEvent):
        return [ts, "drawdown", "", "", "", "", ev.level, "", f"drawdown_{ev.level}",
                f"drawdown {ev.drawdown:.4%} from peak {ev.peak:.2f}, NAV {ev.nav:.2f}, "
                f"budget scale {ev.budget_scale}"]
    return [ts, "kill_switch", "", "", "", "", "engage" if ev.engaged else "release", "",
            "kill_switch_engaged" if ev.engaged else "kill_switch_released",
            f"{ev.reason} (by {ev.who})"]
