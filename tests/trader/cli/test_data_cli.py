"""``trader data ...`` as a user runs it: child processes, a loopback Binance stand-in
(real ccxt, real wire format) served from a thread, the shipped sample data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from daemon_harness import run_cli

from gateways.testing.harness import FAST_TIMING, VenueThread, candle
from trader.core.timeframes import NS
from trader.data.catalog import Catalog, ts_ns

REPO = Path(__file__).resolve().parents[3]
HOUR_MS = 3_600_000
DAY0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    for name in ("TRADER_DATA_DIR", "TRADER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def venue():
    v = VenueThread("binance")
    try:
        yield v
    finally:
        v.close()


def set_market(v: VenueThread, hours: int) -> None:
    """``hours`` closed hourly candles from 2024-01-01 plus the forming one; a falling then
    rising price so a fast SmaCross trades."""
    prices = [200.0 - i if i < hours // 2 else 200.0 - hours + 2 * i for i in range(hours + 1)]
    v.standin.set_series(v.h.venue_id, [candle(DAY0_MS + i * HOUR_MS, p)
                                        for i, p in enumerate(prices)])
    v.standin.set_clock(DAY0_MS + hours * HOUR_MS + 10 * 60_000)


def write_config(tmp: Path, v: VenueThread) -> Path:
    cfg = {
        "name": "from-catalog",
        "data": {"catalog": "catalog"},
        "instruments": [{"id": "BTCUSDT", "symbol": "BTC/USDT", "venue": "BINANCE",
                         "asset_class": "crypto", "tick_size": 0.01, "lot_step": 0.001,
                         "data": {"catalog": "BTCUSDT", "timeframe": "1h"}}],
        "models": [{"name": "fast", "model": "SmaCross", "budget": 0.5,
                    "instruments": ["BTCUSDT"], "timeframe": "1h",
                    "params": {"fast": 3, "slow": 8}}],
        "gateways": {"binance": {
            "exchange": "binance", "urls": v.standin.urls(), "rate_limit": False,
            "timing": FAST_TIMING.model_copy(update={"history_page_limit": 25}).model_dump()}},
        "daemon": {"data_dir": str(tmp / "var")},
    }
    path = tmp / "research.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_download_update_validate_and_a_backtest_from_the_catalog(venue, tmp_path):
    set_market(venue, 60)
    cfg = write_config(tmp_path, venue)
    args = ["data", "download", "--gateway", "binance", "--symbols", "BTC/USDT",
            "--timeframe", "1h", "--start", "2024-01-01", "--config", str(cfg)]
    res = run_cli(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr + res.stdout
    cat = Catalog(tmp_path / "catalog")
    key = cat.key("binance", "BTCUSDT", "1h")
    ts = ts_ns(cat.read(key))
    assert len(ts) == 60 and ts[0] == DAY0_MS * 1_000_000 and (np.diff(ts) == 3600 * NS).all()
    # the same command again adds nothing: nothing is stored twice
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(ts_ns(cat.read(key))) == 60
    # ten more hours at the venue: update brings the entry up to the last closed bar
    set_market(venue, 70)
    upd = run_cli("data", "update", "--config", str(cfg), cwd=tmp_path)
    assert upd.returncode == 0, upd.stderr + upd.stdout
    ts = ts_ns(cat.read(key))
    assert len(ts) == 70 and (np.diff(ts) == 3600 * NS).all()
    assert "resumed after 2024-01-03T11:00:00Z" in upd.stdout
    # validate by entry name: crypto trades around the clock, the series is whole
    val = run_cli("data", "validate", "binance/BTCUSDT", "--config", str(cfg), "--json",
                  cwd=tmp_path)
    assert val.returncode == 0, val.stderr + val.stdout
    (rep,) = json.loads(val.stdout)
    assert rep["rows"] == 70 and rep["errors"] == 0 and rep["calendar"] == "binance"
    # the backtest reads the catalog entry named in the config
    bt = run_cli("backtest", str(cfg), "--no-progress", "--out", str(tmp_path / "run"),
                 cwd=tmp_path)
    assert bt.returncode == 0, bt.stderr + bt.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["bars"] == 70 and metrics["trades"] > 0
    assert metrics["data"]["BTCUSDT"]["source"] == "download:binance"


def cli(capsys, monkeypatch, cwd: Path, *args: str) -> tuple[int, str, str]:
    """``trader ARGS`` in this process (exit code, stdout, stderr): for quick error checks."""
    from trader.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setattr("sys.argv", ["trader", *args])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def test_download_errors_name_the_cause_and_exit_2(tmp_path, capsys, monkeypatch):
    cfg = {"instruments": [{"id": "BTCUSDT", "symbol": "BTC/USDT", "venue": "BINANCE",
                            "asset_class": "crypto",
                            "data": {"catalog": "BTCUSDT", "timeframe": "1h"}}],
           "gateways": {"binance": {"exchange": "binance"}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = cli(capsys, monkeypatch, tmp_path, "data", "download", "--gateway", "kraken",
                       "--symbols", "BTC/USD", "--start", "2024-01-01", "--config", "c.yaml")
    assert code == 2 and "no gateways.kraken section" in err, err
    code, _, err = cli(capsys, monkeypatch, tmp_path, "data", "download", "--gateway", "binance",
                       "--symbols", "BTC/USDT", "--start", "yesterday", "--config", "c.yaml")
    assert code == 2 and "--start: 'yesterday' is not a valid date/time" in err, err
    # an entry not filled yet: the backtest names the key and the command that fills it
    code, _, err = cli(capsys, monkeypatch, tmp_path, "backtest", "c.yaml", "--no-progress")
    assert code == 2 and "instruments.0.data.catalog" in err and "trader data download" in err


def yahoo_csv(path: Path, n: int = 400) -> pa.Table:
    """The shipped SPY bars as a Yahoo download (``Date,...,Adj Close,Volume``)."""
    t = pq.read_table(REPO / "data" / "spy_1d.parquet").slice(0, n)
    days = [d.strftime("%Y-%m-%d") for d in t.column("ts").to_pylist()]
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for i, d in enumerate(days):
        o, h, lo, c, v = (t.column(k)[i].as_py() for k in ("open", "high", "low", "close",
                                                           "volume"))
        lines.append(f"{d},{o},{h},{lo},{c},{c * 0.8},{int(v)}")
    path.write_text("\n".join(lines) + "\n")
    return t


def test_a_yahoo_csv_imports_validates_and_backtests(tmp_path):
    src = yahoo_csv(tmp_path / "SPY.csv")
    res = run_cli("data", "import", "SPY.csv", "--symbol", "SPY", "--timeframe", "1d",
                  "--venue", "yahoo", "--catalog", "catalog", "--adjusted", cwd=tmp_path)
    assert res.returncode == 0, res.stderr + res.stdout
    cat = Catalog(tmp_path / "catalog")
    got = cat.read(cat.key("yahoo", "SPY", "1d"))
    assert ts_ns(got).tolist() == src.column("ts").cast(pa.int64()).to_pylist()
    assert got.column("close").to_pylist() == pytest.approx(
        [c * 0.8 for c in src.column("close").to_pylist()])
    man = cat.manifest(cat.key("yahoo", "SPY", "1d"))
    assert man is not None and man.adjustments[0]["kind"] == "back_adjusted"
    # equities: weekends and NYSE holidays are no gaps
    val = run_cli("data", "validate", "yahoo/SPY", "--calendar", "XNYS", "--catalog", "catalog",
                  "--json", cwd=tmp_path)
    assert val.returncode == 0, val.stdout + val.stderr
    assert json.loads(val.stdout)[0]["errors"] == 0
    cfg = {"name": "spy", "data": {"catalog": "catalog"},
           "instruments": [{"id": "SPY", "symbol": "SPY", "venue": "ARCA", "asset_class": "equity",
                            "data": {"catalog": "SPY", "timeframe": "1d"}}],
           "models": [{"name": "t", "model": "SmaCross", "budget": 0.5, "instruments": ["SPY"],
                       "params": {"fast": 5, "slow": 20}}]}
    (tmp_path / "spy.yaml").write_text(yaml.safe_dump(cfg))
    bt = run_cli("backtest", "spy.yaml", "--no-progress", "--out", "run", cwd=tmp_path)
    assert bt.returncode == 0, bt.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["bars"] == 400
    assert metrics["data"]["SPY"]["adjustments"][0]["kind"] == "back_adjusted"


def test_validate_reports_planted_problems_and_exits_1(tmp_path):
    t = pq.read_table(REPO / "data" / "spy_1d.parquet").slice(0, 60).to_pylist()
    del t[30:33]  # a gap of three trading days
    t.insert(10, dict(t[10]))  # a duplicate
    t[20] = {**t[20], "high": t[20]["low"] - 1}  # high < low
    t[40] = {**t[40], "close": 0.0}  # zero price
    pq.write_table(pa.Table.from_pylist(t), tmp_path / "spy.parquet")
    res = run_cli("data", "validate", "spy.parquet", "--calendar", "XNYS", "--json",
                  cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    (rep,) = json.loads(res.stdout)
    kinds = {(f["kind"], f["row"]) for f in rep["findings"]}
    assert ("duplicate", 12) in kinds
    assert ("ohlc", 21) in kinds and ("ohlc", 41) in kinds
    gaps = [f for f in rep["findings"] if f["kind"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["detail"].startswith("3 bar(s) missing"), gaps
    table = run_cli("data", "validate", "spy.parquet", "--calendar", "XNYS", cwd=tmp_path)
    assert table.returncode == 1 and "duplicate" in table.stdout and "gap" in table.stdout


def test_import_errors_name_file_row_and_column(tmp_path, capsys, monkeypatch):
    (tmp_path / "bad.csv").write_text("Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,1.5\n"
                                      "2020-01-0x,1,2,0.5,1.5\n")
    imp = ("data", "import", "--timeframe", "1d", "--catalog", "c")
    code, _, err = cli(capsys, monkeypatch, tmp_path, *imp, "bad.csv", "--symbol", "X")
    assert code == 2 and "bad.csv: row 2: unreadable Date '2020-01-0x'" in err, err
    (tmp_path / "cols.csv").write_text("when,o,h,l,price\n1,1,2,0.5,1.5\n")
    code, _, err = cli(capsys, monkeypatch, tmp_path, *imp, "cols.csv", "--symbol", "X")
    assert code == 2 and "no column for ['ts', 'close']" in err, err
    code, out, err = cli(capsys, monkeypatch, tmp_path, *imp, "cols.csv", "--symbol", "X",
                         "--columns", "when=ts,price=close", "--unit", "s")
    assert code == 0 and "imported 1 bars into user/X/1d" in " ".join(out.split()), err
    code, _, err = cli(capsys, monkeypatch, tmp_path, *imp, "cols.csv", "--symbol", "X",
                       "--columns", "when=ts,price=close", "--tz", "Mars/Olympus")
    assert code == 2 and "cols.csv" in err and "Mars/Olympus" in err, err


def test_validate_a_config_checks_each_instrument_on_its_calendar(tmp_path, capsys, monkeypatch):
    code, out, _ = cli(capsys, monkeypatch, tmp_path, "data", "validate", "--config",
                       str(REPO / "config" / "backtest.yaml"), "--json")
    report = {r["target"]: r for r in json.loads(out)}
    assert code == 1  # the shipped QQQ file has a real hole
    assert report["SPY"]["calendar"] == "equity" and report["SPY"]["errors"] == 0
    (hole,) = [f for f in report["QQQ"]["findings"] if f["kind"] == "gap"]
    assert hole["ts"] == "2004-12-01T00:00:00Z" and hole["detail"].startswith("1588 bar(s)")
    assert report["BTCUSD"]["calendar"] == "crypto" and report["BTCUSD"]["errors"] == 0


def test_large_row_groups_are_named_and_an_import_recuts_them(tmp_path):
    """A replay of several files warns about each whose row groups it must decode whole;
    ``trader data import``, which the warning suggests, writes the catalog's small row
    groups, and the replay from the catalog trades the same without the warning."""
    from trader.data.layout import LARGE_ROW_GROUP, ROW_GROUP_ROWS

    n = LARGE_ROW_GROUP + 10
    ts = pa.array(DAY0_MS * 1_000_000 + np.arange(n, dtype=np.int64) * 60 * NS,
                  pa.timestamp("ns", tz="UTC"))
    for i, sym in enumerate(("AAA", "BBB")):
        close = 100 * np.exp(np.cumsum(np.random.default_rng(i).normal(0, 0.001, n)))
        pq.write_table(pa.table({"ts": ts, "open": close, "high": close * 1.001,
                                 "low": close * 0.999, "close": close, "volume": np.ones(n)}),
                       tmp_path / f"{sym}.parquet", row_group_size=n)

    def config(name: str, data: dict[str, dict]) -> str:
        cfg = {"name": name, "data": {"catalog": "catalog"},
               "instruments": [{"id": s, "symbol": s, "venue": "USER", "asset_class": "crypto",
                                "lot_step": 0.001, "data": {**d, "timeframe": "1m"}}
                               for s, d in data.items()],
               "models": [{"name": "m", "model": "SmaCross", "budget": 0.5,
                           "instruments": list(data), "timeframe": "1m",
                           "params": {"fast": 10, "slow": 30}}]}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        return f"{name}.yaml"

    files = config("files", {s: {"path": f"{s}.parquet"} for s in ("AAA", "BBB")})
    bt = run_cli("backtest", files, "--no-progress", "--out", "run1", cwd=tmp_path, timeout=180)
    assert bt.returncode == 0, bt.stderr
    warned = [json.loads(line) for line in bt.stderr.splitlines() + bt.stdout.splitlines()
              if "data_row_groups_large" in line]
    assert sorted(w["instrument"] for w in warned) == ["AAA", "BBB"], bt.stderr
    assert all(w["row_group_rows"] == n and "trader data import" in w["hint"] for w in warned)

    for sym in ("AAA", "BBB"):
        res = run_cli("data", "import", f"{sym}.parquet", "--symbol", sym, "--timeframe", "1m",
                      "--catalog", "catalog", cwd=tmp_path)
        assert res.returncode == 0, res.stderr + res.stdout
        meta = pq.ParquetFile(tmp_path / "catalog" / "user" / sym / "1m.parquet").metadata
        assert meta.row_group(0).num_rows == ROW_GROUP_ROWS and meta.num_rows == n
    cat = config("cat", {s: {"catalog": s} for s in ("AAA", "BBB")})
    bt2 = run_cli("backtest", cat, "--no-progress", "--out", "run2", cwd=tmp_path, timeout=180)
    assert bt2.returncode == 0, bt2.stderr
    assert "data_row_groups_large" not in bt2.stderr + bt2.stdout
    m1, m2 = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("run1", "run2"))
    assert m1["bars"] == m2["bars"] == 2 * n
    assert m1["trades"] == m2["trades"] > 0
    assert (tmp_path / "run1" / "trades.csv").read_text() == \
        (tmp_path / "run2" / "trades.csv").read_text()
