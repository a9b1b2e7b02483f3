"""Walk-forward optimisation: optimise in-sample, test the choice on the next window, roll.

Each window is its own study (``<name>.w1``, ``<name>.w2``, ...) over the in-sample
dates; its best feasible parameters are then replayed, unchanged, on the
out-of-sample dates that follow. The main study keeps one record per window
(dates, parameters, in- and out-of-sample metrics) and the out-of-sample metrics
of the windows chained together: the evidence an out-of-sample promotion reads.
Each replay starts flat with fresh models, so a window's first bars are the
models' warm-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from trader.optimize.experiment import LoadedExperiment

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class WindowResult:
    """One walk-forward window: its dates, the chosen parameters and both scores."""

    window: int
    in_sample: tuple[str, str]
    out_of_sample: tuple[str, str]
    params: dict[str, Any]
    in_sample_metrics: dict[str, float]
    out_of_sample_metrics: dict[str, float]


def chain_returns(windows: Sequence[Sequence[float]]) -> list[float]:
    """Out-of-sample returns of consecutive windows, one series (windows do not overlap)."""
    return [r for w in windows for r in w]


def oos_summary(results: Sequence[WindowResult], returns: Sequence[Sequence[float]],
                days: Sequence[int]) -> dict[str, float]:
    """Metrics of the chained out-of-sample curve (NAV rebuilt from the returns)."""
    from trader.replay.metrics import compute_metrics

    navs = [1.0]
    for r in chain_returns(returns):
        navs.append(navs[-1] * (1 + r))
    ts = [d * 86_400 * 10**9 for d in days] if len(days) == len(navs) else \
        [i * 86_400 * 10**9 for i in range(len(navs))]
    trades = sum(int(w.out_of_sample_metrics.get("trades", 0)) for w in results)
    m = compute_metrics(ts, navs, trades=trades, wins=0, losses=0, gross_profit=0.0,
                        gross_loss=0.0, exposure=0.0)
    return {k: float(m[k]) for k in ("total_return", "cagr", "sharpe", "max_drawdown", "trades")}


def walk_forward(exp: LoadedExperiment, storage: Any, storage_url: str, main: optuna.Study,
                 run_window: Callable[[optuna.Study, tuple[str, str], int], None],
                 ) -> list[WindowResult]:
    """Optimise every in-sample window (``run_window`` runs its trials), replay its best
    on the out-of-sample window, and record the windows in ``main``'s attributes."""
    from trader.optimize.objective import bars_for, daily_returns, scalar_metrics
    from trader.optimize.results import best
    from trader.optimize.study import create_study
    from trader.replay.backtest import run_backtest

    wf = exp.spec.walk_forward
    assert wf is not None
    results: list[WindowResult] = []
    oos_returns: list[list[float]] = []
    days: list[int] = []
    for i, (start, split, end) in enumerate(wf.windows(), 1):
        study = create_study(exp, storage, name=f"{exp.spec.name}.w{i}", seed=exp.spec.seed)
        for k in ("mlflow_uri", "mlflow_experiment", "mlflow_parent_run_id"):
            if k in main.user_attrs:
                study.set_user_attr(k, main.user_attrs[k])
        n = wf.trials or exp.spec.n_trials()
        study.set_user_attr("window", [start, split, end])
        study.set_user_attr("n_trials", n)
        run_window(study, (start, split), n)
        chosen = best(study)
        if not chosen:
            continue  # no feasible in-sample trial: nothing to carry forward
        cfg = exp.variant(chosen[0].params, start=split, end=end)
        result = run_backtest(cfg, None, feed=bars_for(cfg))
        rets = daily_returns(result.engine)
        eq = result.engine.recorder.equity
        if not days and eq:
            days.append(eq[0].ts // (86_400 * 10**9))
        days.extend(p.ts // (86_400 * 10**9) for p in eq[1:])
        oos_returns.append(rets)
        results.append(WindowResult(i, (start, split), (split, end), chosen[0].params,
                                    chosen[0].metrics, scalar_metrics(result.metrics)))
    main.set_user_attr("walk_forward", [asdict(r) for r in results])
    if results:
        main.set_user_attr("oos_metrics", oos_summary(results, oos_returns, days))
        main.set_user_attr("oos_returns", chain_returns(oos_returns))
    return results
