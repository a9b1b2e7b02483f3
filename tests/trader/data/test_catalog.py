"""The catalog: layout, manifest, append without duplicates, lookup by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trader.core.events import Bar
from trader.core.timeframes import NS
from trader.data.catalog import Catalog, CatalogError, table_from_bars, ts_ns

T0 = 1_704_067_200 * NS


def bars(first: int, n: int) -> list[Bar]:
    return [Bar(T0 + (i + 1) * 3600 * NS, "X", 3600, T0 + i * 3600 * NS, 10.0 + i, 11.0 + i,
                9.0 + i, 10.5 + i, 1.0) for i in range(first, first + n)]


def test_layout_manifest_and_append_never_duplicates(tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    key = cat.key("binance", "BTC/USDT", "H1")
    assert cat.path(key) == tmp_path / "binance" / "BTC-USDT" / "1h.parquet"
    assert cat.append(key, table_from_bars(bars(0, 5)), source="download:binance",
                      venue_symbol="BTC/USDT") == 5
    # overlapping bars: only the ones after the last stored bar are added
    assert cat.append(key, table_from_bars(bars(3, 5)), source="download:binance") == 3
    ts = ts_ns(cat.read(key))
    assert ts.tolist() == [T0 + i * 3600 * NS for i in range(8)]  # open-time labels
    man = json.loads(cat.manifest_path(key).read_text())
    assert man["rows"] == 8 and man["first"] == "2024-01-01T00:00:00Z"
    assert man["last"] == "2024-01-01T07:00:00Z" and man["venue_symbol"] == "BTC/USDT"
    assert cat.verify(key) is None
    with open(cat.path(key), "ab") as fh:  # a file changed behind the manifest's back
        fh.write(b"x")
    assert "sha256 differs" in (cat.verify(key) or "")


def test_find_by_symbol_venue_and_timeframe(tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    for venue, tf in (("binance", "1h"), ("binance", "1d"), ("kraken", "1h")):
        cat.write(cat.key(venue, "BTCUSDT", tf), table_from_bars(bars(0, 2)), source="t")
    assert cat.find("binance/BTCUSDT", "1d").name == "binance/BTCUSDT/1d"
    assert cat.find("kraken/BTCUSDT").name == "kraken/BTCUSDT/1h"
    with pytest.raises(CatalogError, match="ambiguous: binance/BTCUSDT/1h, kraken/BTCUSDT/1h"):
        cat.find("BTCUSDT", "1h")
    with pytest.raises(CatalogError, match="no entry 'ETHUSDT'.*trader data download"):
        cat.find("ETHUSDT")


def test_unordered_bars_are_refused(tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    with pytest.raises(CatalogError, match="strictly increasing"):
        cat.write(cat.key("v", "X", "1h"), table_from_bars(bars(0, 3)[::-1]), source="t")


def test_entries_are_written_in_small_row_groups(tmp_path: Path) -> None:
    """A replay decodes a row group of each file at a time: the catalog keeps them small."""
    import pyarrow.parquet as pq

    from trader.data.layout import ROW_GROUP_ROWS

    cat = Catalog(tmp_path)
    key = cat.key("v", "X", "1h")
    n = 2 * ROW_GROUP_ROWS + 5
    cat.write(key, table_from_bars(bars(0, n)), source="t")
    meta = pq.ParquetFile(cat.path(key)).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 5]
    assert len(ts_ns(cat.read(key))) == n
