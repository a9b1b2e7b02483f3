"""``trader data``: download, update, import, validate, resample and list catalog entries.

Only typer and rich are imported here; pyarrow, the gateways and the calendars
load when a command runs, so ``trader --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from trader.cli.deployment import CONFIG_OPTION, UserError

if TYPE_CHECKING:
    from trader.data.catalog import Catalog, EntryKey

data_app = typer.Typer(no_args_is_help=True, help="Historical data: the Parquet catalog.")
console = Console()
err_console = Console(stderr=True)

CATALOG_OPTION = typer.Option(None, "--catalog",
                              help="catalog root (default: the config's data.catalog, "
                                   "else data/catalog)")


def _catalog(root: Path | None, config: Path | None = None) -> Catalog:
    from trader.data.catalog import DEFAULT_ROOT, Catalog

    if root is not None:
        return Catalog(root)
    if config is not None:
        from trader.cli.deployment import resolve

        cfg = resolve(config, None, must_exist=False).cfg
        assert cfg is not None
        return Catalog(cfg.data.catalog)
    return Catalog(DEFAULT_ROOT)


def _split(values: list[str]) -> list[str]:
    """``--symbols A,B --symbols C`` -> [A, B, C]."""
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def _time(text: str | None, option: str) -> int | None:
    from trader.data.feed import DataError, parse_time

    try:
        return parse_time(text)
    except DataError as exc:
        raise UserError(f"{option}: {exc}") from None


# -- download / update -----------------------------------------------------------------------
def _gateway_section(cfg: Any, gateway: str, config: Path) -> dict[str, Any]:
    section = cfg.gateways.get(gateway)
    if section is None:
        raise UserError(f"{config}: no gateways.{gateway} section (configured gateways: "
                        f"{sorted(cfg.gateways) or 'none'}); the download takes the gateway's "
                        "settings from the config and its credentials from the environment")
    return dict(section)


def _instrument_ids(section: dict[str, Any], symbols: list[str]) -> dict[str, str]:
    """Venue symbol -> instrument id for each asked symbol: the section's own mapping,
    or the symbol without separators (``BTC/USDT`` -> ``BTCUSDT``) when it has none."""
    mapping = {str(k): str(v) for k, v in (section.get("symbols") or {}).items()}
    by_id = {v: k for k, v in mapping.items()}
    out: dict[str, str] = {}
    for sym in symbols:
        if sym in mapping:
            out[sym] = mapping[sym]
        elif sym in by_id:
            out[by_id[sym]] = sym
        else:
            out[sym] = sym.replace("/", "").replace(":", "").replace("-", "")
    return out


def _build_source(config: Path, gateway: str, timeframe: str, wanted: dict[str, str]) -> Any:
    """The gateway of ``gateways.<gateway>``, market data only, streaming ``wanted``."""
    from gateways import registry
    from gateways.base import GatewayConfigError, GatewayContext
    from trader.cli.deployment import resolve

    cfg = resolve(config, None, must_exist=False).cfg
    assert cfg is not None
    section = _gateway_section(cfg, gateway, config)
    section["symbols"] = wanted
    section["timeframe"] = timeframe
    section.pop("market_data", None)
    try:
        return registry.build(gateway, section, GatewayContext(trading=False))
    except GatewayConfigError as exc:
        raise UserError(f"{config}: {exc}") from None


async def _connect(source: Any) -> None:
    import inspect

    connect = source.connect
    if "stream" in inspect.signature(connect).parameters:
        await connect(stream=False)  # history only: no live stream
    else:
        await connect()


def _progress() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("bars"), TextColumn("{task.fields[rows]:,} rows"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                    disable=not console.is_terminal)


def _run_downloads(config: Path, gateway: str, timeframe: str,
                   jobs: list[tuple[str, str, int]], end_ns: int | None,
                   catalog: Catalog, chunk: int) -> list[Any]:
    """Download each (venue symbol, instrument id, start) into the catalog."""
    import asyncio

    from trader.data.download import download

    wanted = {sym: inst for sym, inst, _ in jobs}
    source = _build_source(config, gateway, timeframe, wanted)
    results: list[Any] = []

    async def go() -> None:
        await _connect(source)
        try:
            with _progress() as bar:
                for sym, inst, start in jobs:
                    key = catalog.key(gateway, inst, timeframe)
                    task = bar.add_task(key.name, total=None, rows=0)

                    def tick(done: int, total: int, task: Any = task, key: EntryKey = key) -> None:
                        bar.update(task, completed=done, total=total,
                                   rows=(catalog.manifest(key).rows
                                         if catalog.manifest(key) else 0))
                    results.append(await download(source, catalog, key, inst, start, end_ns,
                                                  chunk_bars=chunk, progress=tick,
                                                  venue_symbol=sym))
        finally:
            await source.close()

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        err_console.print("interrupted: the bars stored so far are kept; run the same command "
                          "again to resume")
        raise typer.Exit(130) from None
    except (UserError, typer.Exit):
        raise
    except KeyError as exc:
        raise UserError(f"gateways.{gateway}: {exc.args[0] if exc.args else exc}") from None
    except Exception as exc:  # a venue that keeps failing: keep what is stored, say how to resume
        from gateways.base import GatewayStartError

        if isinstance(exc, GatewayStartError):  # a symbol it does not list, bad credentials
            raise UserError(f"gateways.{gateway}: {exc}") from None
        kept = ", ".join(f"{k.name} to {m.last}" for k, m in catalog.iter_keys()
                         if m is not None and k.venue == gateway) or "nothing"
        err_console.print(f"error: download from {gateway} failed: {type(exc).__name__}: "
                          f"{str(exc)[:300]}\nstored: {kept}; run the same command again to "
                          "resume after the last stored bar", highlight=False)
        raise typer.Exit(1) from None
    return results


def _print_results(results: list[Any], catalog: Catalog) -> None:
    from trader.core.events import ns_to_iso

    table = Table(title="Downloaded")
    for col in ("entry", "added", "rows", "first", "last", "missing"):
        table.add_column(col)
    for r in results:
        man = catalog.manifest(r.key)
        table.add_row(r.key.name, f"{r.added:,}", f"{man.rows:,}" if man else "0",
                      man.first if man else "-", man.last if man else "-", str(r.missing))
        if r.resumed_from is not None and r.added:
            console.print(f"{r.key.name}: resumed after {ns_to_iso(r.resumed_from)}",
                          highlight=False)
    console.print(table)


@data_app.command("download")
def download_cmd(
    gateway: str = typer.Option(..., "--gateway", "-g", help="gateway name under gateways:"),
    symbols: list[str] = typer.Option(..., "--symbols", "-s",
                                      help="venue symbols (repeat or comma-separate)"),
    timeframe: str = typer.Option("1h", "--timeframe", "-t", help="bar length, e.g. 1m 1h 1d"),
    start: str = typer.Option(..., "--start", help="first bar (ISO date/time, UTC)"),
    end: str = typer.Option(None, "--end", help="end, exclusive (default: the last closed bar)"),
    config: Path = CONFIG_OPTION,
    catalog_root: Path = CATALOG_OPTION,
    chunk: int = typer.Option(1000, "--chunk", min=1, help="bars per history request"),
) -> None:
    """Download closed bars through a gateway's market data into the catalog (resumable)."""
    from trader.core.timeframes import parse_timeframe

    if config is None:
        raise UserError("download needs --config: the gateway's settings come from its "
                        "gateways.<name> section")
    try:
        parse_timeframe(timeframe)
    except ValueError as exc:
        raise UserError(f"--timeframe: {exc}") from None
    start_ns = _time(start, "--start")
    assert start_ns is not None
    end_ns = _time(end, "--end")
    catalog = _catalog(catalog_root, config)
    from trader.cli.deployment import resolve

    cfg = resolve(config, None, must_exist=False).cfg
    ids = _instrument_ids(_gateway_section(cfg, gateway, config), _split(symbols))
    jobs = [(sym, inst, start_ns) for sym, inst in ids.items()]
    _print_results(_run_downloads(config, gateway, timeframe, jobs, end_ns, catalog, chunk),
                   catalog)


@data_app.command("update")
def update_cmd(
    config: Path = CONFIG_OPTION,
    catalog_root: Path = CATALOG_OPTION,
    chunk: int = typer.Option(1000, "--chunk", min=1, help="bars per history request"),
) -> None:
    """Bring every downloaded catalog entry up to its venue's last closed bar."""
    from trader.core.timeframes import format_timeframe

    if config is None:
        raise UserError("update needs --config: the gateways' settings come from it")
    catalog = _catalog(catalog_root, config)
    from trader.cli.deployment import resolve

    cfg = resolve(config, None, must_exist=False).cfg
    assert cfg is not None
    groups: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for key, man in catalog.iter_keys():
        if man is None or not man.source.startswith("download:"):
            continue
        gw = man.source.split(":", 1)[1]
        if gw not in cfg.gateways:
            err_console.print(f"skipped {key.name}: gateway {gw!r} is not in {config}",
                              highlight=False)
            continue
        sym = man.venue_symbol or next(iter(_instrument_ids(cfg.gateways[gw], [key.symbol])))
        start = catalog.last_open(key) or 0
        groups.setdefault((gw, format_timeframe(key.timeframe)), []).append(
            (sym, key.symbol, start))
    if not groups:
        console.print(f"nothing to update in {catalog.root} (no downloaded entries)")
        return
    results = []
    for (gw, tf), jobs in sorted(groups.items()):
        results += _run_downloads(config, gw, tf, jobs, None, catalog, chunk)
    _print_results(results, catalog)


# -- import ----------------------------------------------------------------------------------
@data_app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., help="CSV or Parquet file of bars"),
    symbol: str = typer.Option(..., "--symbol", help="the catalog symbol (instrument id)"),
    timeframe: str = typer.Option(..., "--timeframe", "-t", help="bar length of the file"),
    venue: str = typer.Option("user", "--venue", help="the catalog venue folder"),
    columns: str = typer.Option(None, "--columns",
                                help="mapping FILE_COLUMN=TARGET,... (targets: ts, open, high, "
                                     "low, close, volume, adj_close)"),
    tz: str = typer.Option(None, "--tz", help="time zone of naive times (default UTC), "
                                              "e.g. America/New_York"),
    unit: str = typer.Option(None, "--unit", help="epoch unit of numeric times: s, ms, us, ns "
                                                  "(default: from the magnitude)"),
    adjusted: bool = typer.Option(False, "--adjusted", help="back-adjust prices by the file's "
                                                            "adjusted close (Yahoo 'Adj Close')"),
    factor_file: Path = typer.Option(None, "--factor-file",
                                     help="LEAN factor file: back-adjust splits and dividends"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="drop bad rows (listed) instead "
                                                            "of stopping at the first"),
    catalog_root: Path = CATALOG_OPTION,
    config: Path = CONFIG_OPTION,
) -> None:
    """Import a user's bar file into the catalog (column mapping, time zones, any epoch unit)."""
    from trader.core.timeframes import parse_timeframe
    from trader.data.corporate import FactorFileError, back_adjust, read_factor_file
    from trader.data.importer import BarImportError, import_bars, parse_mapping

    try:
        parse_timeframe(timeframe)
        if tz is not None:
            import zoneinfo

            zoneinfo.ZoneInfo(tz)
        res = import_bars(file, columns=parse_mapping(columns), tz=tz, unit=unit,
                          adjust_close=adjusted, on_bad_row="skip" if skip_bad else "error")
        table, adjustments = res.table, list(res.adjustments)
        if factor_file is not None:
            table, record = back_adjust(table, read_factor_file(factor_file), factor_file.name)
            adjustments.append(record)
    except (BarImportError, FactorFileError) as exc:
        raise UserError(str(exc)) from None
    except (ValueError, KeyError) as exc:  # timeframe, unknown time zone
        raise UserError(f"{file}: {exc}") from None
    catalog = _catalog(catalog_root, config)
    key = catalog.key(venue, symbol, timeframe)
    man = catalog.write(key, table, source=f"import:{file.name}", adjustments=adjustments)
    for p in res.dropped_bad:
        err_console.print(f"skipped: {p}", highlight=False)
    mapped = ", ".join(f"{src}->{dst}" for dst, src in sorted(res.mapping.items()))
    console.print(f"imported {man.rows:,} bars into {key.name} ({catalog.path(key)}): "
                  f"{man.first} .. {man.last}; columns {mapped}"
                  + (f"; adjusted: {', '.join(a['source'] for a in adjustments)}"
                     if adjustments else ""), highlight=False)


# -- validate --------------------------------------------------------------------------------
def _guess_timeframe(ts: Any) -> int:
    import numpy as np

    d = np.diff(np.unique(ts))
    if len(d) == 0:
        return 86_400
    return int(np.min(d[d > 0]) // 1_000_000_000) or 1


def _calendar_for(venue: str | None, given: str | None) -> tuple[str, str]:
    """(calendar key, why): ``--calendar``, else the venue if it names one, else 24/7."""
    from trader.core.calendars import CalendarError, MarketCalendar

    if given is not None:
        try:
            MarketCalendar(given)
        except CalendarError as exc:
            raise UserError(f"--calendar: {exc}") from None
        return given, "--calendar"
    if venue is not None:
        try:
            MarketCalendar(venue)
            return venue, f"venue {venue}"
        except CalendarError:
            pass
    return "24/7", "default; pass --calendar XNYS (equities) or fx to skip closed hours"


@data_app.command("validate")
def validate_cmd(
    targets: list[str] = typer.Argument(None, help="catalog entries (venue/symbol[/tf]) or "
                                        "files (default: every instrument of --config)"),
    calendar: str = typer.Option(None, "--calendar",
                                 help="trading calendar: XNYS (or equity), fx, crypto, a MIC"),
    timeframe: str = typer.Option(None, "--timeframe", "-t",
                                  help="bar length (default: the entry's, or a file's smallest "
                                       "step)"),
    as_json: bool = typer.Option(False, "--json", help="findings as JSON"),
    stale_run: int = typer.Option(10, "--stale-run", min=2, help="flat bars that make a stale run"),
    outlier_sigmas: float = typer.Option(12.0, "--outlier-sigmas", help="robust deviations that "
                                                                        "make an outlier return"),
    catalog_root: Path = CATALOG_OPTION,
    config: Path = CONFIG_OPTION,
) -> None:
    """Check gaps (by trading calendar), duplicates, order, OHLC rules, stale runs, outliers.

    Exit 1 if any error was found (gaps, duplicates, disorder, bad prices)."""
    from trader.core.timeframes import parse_timeframe
    from trader.data.catalog import CatalogError
    from trader.data.importer import BarImportError, read_bars
    from trader.data.validate import ERROR, check_series

    catalog = _catalog(catalog_root, config)
    report: list[dict[str, Any]] = []
    jobs: list[tuple[str, str | None, int | None, str | None, str]] = [
        (t, None, parse_timeframe(timeframe) if timeframe else None, calendar, "--calendar")
        for t in targets or []]
    if not jobs:
        if config is None:
            raise UserError("validate needs catalog entries or files, or --config to check "
                            "every instrument's data")
        from trader.cli.deployment import resolve

        cfg = resolve(config, None, must_exist=False).cfg
        assert cfg is not None
        # each instrument on its own asset class's calendar (equity: NYSE, fx, crypto)
        jobs = [(str(i.data.path), i.id, parse_timeframe(i.data.timeframe),
                 calendar or i.asset_class, "--calendar" if calendar else "asset_class")
                for i in cfg.instruments if i.data is not None and i.data.path is not None]
    for target, label, tf, cal_given, source in jobs:
        path = Path(target)
        venue = None
        if not path.exists():
            try:
                key = catalog.find(target, timeframe)
            except CatalogError as exc:
                raise UserError(f"{target}: not a file, and {exc}") from None
            path, venue, tf = catalog.path(key), key.venue, key.timeframe
        try:
            bars = read_bars(path)
        except BarImportError as exc:
            raise UserError(str(exc)) from None
        tf = tf or _guess_timeframe(bars.ts)
        cal, why = _calendar_for(venue, cal_given)
        why = source if cal_given is not None else why
        found = check_series(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                             timeframe_s=tf, calendar=cal, stale_run=stale_run,
                             outlier_sigmas=outlier_sigmas)
        report.append({"target": label or target, "path": str(path), "rows": len(bars.ts),
                       "timeframe_s": tf, "calendar": cal, "calendar_from": why,
                       "errors": sum(f.severity == ERROR for f in found),
                       "warnings": sum(f.severity != ERROR for f in found),
                       "findings": [f.as_dict() for f in found]})
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for r in report:
            table = Table(title=f"{r['target']}: {r['rows']:,} rows, calendar {r['calendar']} "
                                f"({r['calendar_from']})")
            for col in ("severity", "kind", "row", "ts", "detail"):
                table.add_column(col)
            for f in r["findings"][:200]:
                table.add_row(f["severity"], f["kind"], str(f["row"]), f["ts"], f["detail"])
            if len(r["findings"]) > 200:
                table.add_row("", "", "", "", f"... {len(r['findings']) - 200} more (--json)")
            console.print(table)
            console.print(f"{r['target']}: {r['errors']} error(s), {r['warnings']} warning(s)",
                          highlight=False)
    if any(r["errors"] for r in report):
        raise typer.Exit(1)


# -- resample --------------------------------------------------------------------------------
@data_app.command("resample")
def resample_cmd(
    entry: str = typer.Argument(..., help="catalog entry venue/symbol/timeframe"),
    to: list[str] = typer.Option(..., "--to", help="target timeframe(s), e.g. 4h 1d"),
    catalog_root: Path = CATALOG_OPTION,
    config: Path = CONFIG_OPTION,
) -> None:
    """Build higher-timeframe entries with the kernel aggregator's UTC windows."""
    from trader.core.timeframes import parse_timeframe
    from trader.data.catalog import CatalogError
    from trader.data.resample import ResampleError, resample

    catalog = _catalog(catalog_root, config)
    try:
        key = catalog.find(entry)
    except CatalogError as exc:
        raise UserError(str(exc)) from None
    table = catalog.read(key)
    man = catalog.manifest(key)
    for target in _split(to):
        try:
            out = resample(table, key.timeframe, parse_timeframe(target))
        except (ResampleError, ValueError) as exc:
            raise UserError(f"--to {target}: {exc}") from None
        dst = catalog.key(key.venue, key.symbol, target)
        m = catalog.write(dst, out, source=f"resample:{key.name}",
                          adjustments=man.adjustments if man else [])
        console.print(f"{dst.name}: {m.rows:,} bars from {table.num_rows:,} ({m.first} .. "
                      f"{m.last})", highlight=False)


@data_app.command("list")
def list_cmd(catalog_root: Path = CATALOG_OPTION, config: Path = CONFIG_OPTION) -> None:
    """The catalog's entries with their manifests."""
    catalog = _catalog(catalog_root, config)
    table = Table(title=f"catalog {catalog.root}")
    for col in ("entry", "rows", "first", "last", "source", "adjusted", "intact"):
        table.add_column(col)
    for key, man in catalog.iter_keys():
        problem = catalog.verify(key)
        table.add_row(key.name, f"{man.rows:,}" if man else "?", man.first if man else "?",
                      man.last if man else "?", man.source if man else "?",
                      "yes" if man and man.adjustments else "no",
                      "yes" if problem is None else problem)
    console.print(table)
