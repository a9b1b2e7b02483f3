"""``trader models train TRAIN.yaml``: features, labels, purged folds, XGBoost, artifact.

The bars come from the replay kernel itself (the config's data files, the
aggregator, the model's subscriptions), so training sees exactly what the
model will see live; the folds' out-of-sample signals are backtested through
the replay kernel with the config's costs and recorded in the deployment's
store, where the lifecycle's promotion gate finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from trader.cli.deployment import DATA_DIR_OPTION, UserError

if TYPE_CHECKING:
    from models.ml.features import FeatureFrame
    from models.ml.labels import LabelConfig
    from models.ml.signals import SignalRule
    from models.ml.training import TrainConfig, TrainResult
    from trader.core.events import Bar
    from trader.engine.config import AppConfig, ModelConfig

console = Console()


def load_train_config(path: Path) -> TrainConfig:
    """The training YAML, validated; errors name the file and the key."""
    from pydantic import ValidationError

    from models.ml.training import TrainConfig
    from trader.engine.config import ConfigError, format_validation_error, load_yaml

    raw = load_yaml(path)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(str(path), err)) from None


def model_entry(cfg: AppConfig, name: str, where: str) -> tuple[AppConfig, ModelConfig]:
    """The config cut down to the one XGBoost model ``name`` and its instrument."""
    names = [m.name for m in cfg.models]
    mc = next((m for m in cfg.models if m.name == name), None)
    if mc is None:
        raise UserError(f"{where}: model {name!r} is not in the config (its models: "
                        f"{', '.join(names) or 'none'})")
    if mc.model != "XGBoost" or len(mc.instruments) != 1:
        raise UserError(f"{where}: model {name!r} must be `model: XGBoost` on one instrument "
                        f"(it is {mc.model} on {mc.instruments})")
    insts = [i for i in cfg.instruments if i.id == mc.instruments[0]]
    return cfg.model_copy(update={"models": [mc], "instruments": insts}), mc


def kernel_bars(cfg: AppConfig, mc: ModelConfig, timeframes: tuple[int, ...]) -> list[Bar]:
    """The bars the kernel hands model ``mc`` in a replay of ``cfg``, in that order."""
    from models.base import Model
    from trader.data.feed import feed_from_config
    from trader.engine.build import build_engine

    seen: list[Bar] = []

    class Tap(Model):
        def subscriptions(self) -> list[tuple[str, int]]:
            return [(i, tf) for i in self.instruments for tf in timeframes]

        def on_bar(self, bar: Bar) -> None:
            seen.append(bar)

    engine = build_engine(cfg, models=[Tap(mc.name, mc.instruments, mc.timeframe)],
                          record_orders=False)
    engine.kernel.run(feed_from_config(cfg))
    return seen


def oos_signals(frame: FeatureFrame, result: TrainResult, labels: LabelConfig,
                rule: SignalRule) -> dict[int, dict[int, float]]:
    """Fold -> {decision bar ts: target weight} of the out-of-sample probabilities."""
    from models.ml.signals import target_weight
    from models.ml.training import barrier_width

    s = result.samples
    width = barrier_width(frame, labels)
    vol = frame.column("vol")
    out: dict[int, dict[int, float]] = {}
    for fr in result.folds:
        rows = s.rows[fr.fold.test]
        sides = s.side[fr.fold.test] if labels.primary is not None else [None] * len(rows)
        out[fr.fold.index] = {
            int(frame.ts[r]): target_weight(float(p), float(width[r]), float(vol[r]), rule,
                                            None if side is None else int(side))
            for r, p, side in zip(rows, fr.prob, sides, strict=True)}
    return out


def train_model(train_file: Path, *, out: Path | None = None, walk_forward: bool = False,
                data_dir: Path | None = None, record: bool = True, overwrite: bool = False,
                show: bool = False) -> dict[str, Any]:
    """Train, backtest the out-of-sample signals, write the artifact; return its metadata."""
    from models.ml import artifacts
    from models.ml.features import FeatureEngine, batch_features
    from models.ml.playback import SignalPlayback
    from models.ml.training import train
    from models.xgboost import XGBoostParams, signal_rule
    from trader.cli.deployment import resolve
    from trader.core.timeframes import parse_timeframe
    from trader.engine.config import resolve_data_path
    from trader.replay.backtest import run_backtest
    tc = load_train_config(train_file)
    if walk_forward:
        tc = tc.model_copy(update={"cv": tc.cv.model_copy(update={"scheme": "walk_forward"})})
    config_path = resolve_data_path(Path(tc.config), train_file)
    dep = resolve(config_path, data_dir, must_exist=False)
    assert dep.cfg is not None
    cfg, mc = model_entry(dep.cfg, tc.model, f"{train_file}: model")
    # The training span is the training file's, never the config's backtest span.
    span = {"start": tc.start, "end": tc.end}
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update=span)})
    params = XGBoostParams(**mc.params)
    out_dir = out or Path(tc.out)
    if (out_dir / artifacts.META).exists() and not overwrite:
        raise UserError(f"{out_dir}: an artifact is already there (a running model may use it); "
                        "write the new version elsewhere (--out DIR) or pass --overwrite")
    inst = mc.instruments[0]

    def say(text: str) -> None:
        if show:
            console.print(text, highlight=False)

    tf = parse_timeframe(mc.timeframe)
    engine = FeatureEngine(params.features, tf)
    say(f"[1/4] bars of {inst} from the replay kernel ({mc.timeframe} decisions)")
    bars = kernel_bars(cfg, mc, engine.timeframes())
    frame = batch_features(params.features, tf, bars)
    say(f"[2/4] {len(frame.ts):,} decision bars, {int(frame.ready.sum()):,} with features; "
        f"labels and {tc.cv.folds} purged {tc.cv.scheme} folds")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("      {task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True, disable=not show) as bar:
        task = bar.add_task("fitting folds", total=tc.cv.folds + 1)

        def step(done: str) -> None:
            bar.advance(task)
            say(f"      fitted {done}")

        sides = None
        if tc.labels.primary is not None:
            from models.ml.meta import primary_sides

            sides = primary_sides(tc.labels.primary, inst, tf,
                                  [b for b in bars if b.timeframe == tf])
        try:
            result = train(frame, tc, progress=step, sides=sides)
        except ValueError as exc:
            raise UserError(f"{train_file}: cannot train {mc.name}: {exc}") from None

    labels_meta = tc.labels.model_dump(mode="json")
    rule = signal_rule(params, labels_meta, tf)
    signals = oos_signals(frame, result, tc.labels, rule)
    merged = {ts: w for fold in signals.values() for ts, w in fold.items()}
    say("[3/4] backtest of the out-of-sample signals through the replay kernel")
    db = dep.open_store() if record else None
    try:
        bt = run_backtest(cfg, store=db,
                          models=[SignalPlayback(mc.name, inst, tf, merged)])
    finally:
        if db is not None:
            db.close()
    folds_meta = fold_records(frame, result, bt.engine.recorder.equity)
    keys = ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "exposure")
    meta = {
        "model": mc.name, "instrument": inst, "timeframe": tf,
        "features": {**params.features.canonical(), "hash": params.features.hash(),
                     "names": list(frame.names)},
        "data": {"file": cfg.instruments[0].data.path.name if cfg.instruments[0].data else None,
                 "hash": artifacts.data_hash(frame.ts, frame.open, frame.high, frame.low,
                                             frame.close),
                 "start_ts": int(frame.ts[0]), "end_ts": int(frame.ts[-1]),
                 "bars": len(frame.ts), "samples": len(result.samples.rows)},
        "labels": labels_meta, "cv": tc.cv.model_dump(mode="json"),
        "weights": tc.weights, "xgboost": tc.xgboost.model_dump(mode="json"),
        "calibration": result.final.calibrator.to_dict(),
        "final": {"fit_samples": result.final.fit_n,
                  "calibration_samples": result.final.calibration_n},
        "folds": folds_meta,
        "oos_backtest": {k: bt.metrics[k] for k in keys},
    }
    say(f"[4/4] artifact -> {out_dir}")
    artifacts.write_artifact(out_dir, meta, result.final.model,
                             {fr.fold.index: fr.fit.model for fr in result.folds})
    tracked = _track(cfg, config_path, out_dir, meta, bt.run_id)
    if show:
        console.print(fold_table(meta))
        if tracked is not None:
            console.print(f"tracked as MLflow run {tracked}", highlight=False)
        if bt.run_id is not None:
            console.print(f"out-of-sample backtest recorded as run #{bt.run_id} for model "
                          f"{mc.name}: the promotion gate reads it (`trader models promote "
                          f"{mc.name} --config {config_path}`)", highlight=False)
    # For the caller, not the artifact (whose bytes depend on the data only).
    meta["run_id"] = bt.run_id
    meta["data_path"] = str(cfg.instruments[0].data.path) if cfg.instruments[0].data else None
    meta["oos_signals"] = signals
    meta["oos_probabilities"] = {
        fr.fold.index: dict(zip(frame.ts[result.samples.rows[fr.fold.test]].tolist(),
                                fr.prob.tolist(), strict=True)) for fr in result.folds}
    return meta


def _track(cfg: AppConfig, config_path: Path, out_dir: Path, meta: dict[str, Any],
           run_id: int | None) -> str | None:
    """Log the training to MLflow when tracking is on: the out-of-sample backtest's figures,
    the mean fold scores, what was trained on, and the artifact's files."""
    from trader.tracking import track_run

    folds = meta["folds"]
    scores = {f"oos_{k}": v for k, v in meta["oos_backtest"].items()}
    for key in ("auc", "log_loss", "hit_rate", "ic"):
        vals = [f["metrics"][key] for f in folds
                if isinstance(f["metrics"].get(key), (int, float))]
        if vals:
            scores[f"folds_mean_{key}"] = sum(vals) / len(vals)
    return track_run(
        meta["model"], kind="train", cfg=cfg, config_path=config_path, metrics=scores,
        params={"features_hash": meta["features"]["hash"], "cv_scheme": meta["cv"]["scheme"],
                "folds": len(folds), "store_run_id": run_id},
        artifacts=sorted(p for p in out_dir.iterdir() if p.is_file()),
        tags={"data_hash": meta["data"]["hash"]})


def fold_records(frame: FeatureFrame, result: TrainResult,
                 equity: list[Any]) -> list[dict[str, Any]]:
    """Per fold, for the artifact: its span, sizes, calibration, scores, and the return,
    Sharpe and drawdown of the out-of-sample replay's equity over its test span."""
    from models.ml.artifacts import fold_file
    from trader.replay.metrics import compute_metrics

    out = []
    for fr in result.folds:
        test_ts = frame.ts[result.samples.rows[fr.fold.test]]
        lo, hi = int(test_ts[0]), int(test_ts[-1])
        pts = [p for p in equity if lo <= p.ts <= hi]
        backtest: dict[str, Any] = {}
        if len(pts) > 1:
            m = compute_metrics([p.ts for p in pts], [p.nav for p in pts], trades=0, wins=0,
                                losses=0, gross_profit=0.0, gross_loss=0.0, exposure=0.0)
            backtest = {k: m[k] for k in ("total_return", "sharpe", "max_drawdown")}
        out.append({
            "index": fr.fold.index, "file": fold_file(fr.fold.index),
            "test_start_ts": lo, "test_end_ts": hi,
            "train_samples": len(fr.fold.train), "test_samples": len(fr.fold.test),
            "fit_samples": fr.fit.fit_n, "calibration_samples": fr.fit.calibration_n,
            "calibration": fr.fit.calibrator.to_dict(),
            "metrics": fr.metrics, "backtest": backtest,
        })
    return out


def fold_table(meta: dict[str, Any]) -> Table:
    table = Table(title=f"{meta['model']}: out-of-sample folds")
    for col in ("fold", "train", "test", "auc", "log loss", "hit rate", "ic", "return", "sharpe"):
        table.add_column(col, justify="right")
    for f in meta["folds"]:
        m, b = f["metrics"], f["backtest"]
        table.add_row(str(f["index"]), str(f["train_samples"]), str(f["test_samples"]),
                      f"{m['auc']:.3f}", f"{m['log_loss']:.3f}", f"{m['hit_rate']:.1%}",
                      f"{m['ic']:.3f}", f"{b.get('total_return', 0.0):.2%}",
                      f"{b.get('sharpe', 0.0):.2f}")
    o = meta["oos_backtest"]
    table.caption = (f"all folds: return {o['total_return']:.2%}, Sharpe {o['sharpe']:.2f}, "
                     f"max drawdown {o['max_drawdown']:.2%}, {o['trades']} trades")
    return table


def train_cmd(
    train_file: Path = typer.Argument(..., help="training YAML (see config/btc_xgb.train.yaml)"),
    out: Path = typer.Option(None, "--out", help="artifact directory (default: the file's out:)"),
    walk_forward: bool = typer.Option(False, "--walk-forward",
                                      help="purged walk-forward folds whatever cv.scheme says"),
    data_dir: Path = DATA_DIR_OPTION,
    record: bool = typer.Option(True, "--record/--no-record",
                                help="store the out-of-sample backtest for the promotion gate"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing artifact"),
    log_level: str = typer.Option("warning", "--log-level",
                                  help="JSON log lines on stderr from this level up"),
) -> None:
    """Train an XGBoost model on purged folds and write its artifact."""
    from trader.core.logging import StderrProxy, configure_logging

    configure_logging(log_level, StderrProxy())
    train_model(train_file, out=out, walk_forward=walk_forward, data_dir=data_dir,
                record=record, overwrite=overwrite, show=True)
