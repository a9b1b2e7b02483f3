"""Migrations: an empty database reaches head; a database at head is left untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from trader.core.redaction import redact_url
from trader.engine.config import ConfigError, StoreConfig
from trader.store import Store, StoreError
from trader.store.db import make_engine, with_psycopg
from trader.store.migrate import MIGRATIONS, current_revision, head_revision, upgrade
from trader.store.schema import metadata
from trader.store.views import resolve_url

TABLES = {"orders", "order_events", "fills", "account_snapshots", "position_snapshots",
          "risk_events", "trading_state", "kill_switch", "model_stages", "model_stage_history",
          "runs", "sessions"}


def _schema(engine) -> dict:
    insp = inspect(engine)
    out = {}
    for t in sorted(insp.get_table_names()):
        out[t] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
            sorted(str(u["column_names"]) for u in insp.get_unique_constraints(t)),
            sorted(i["name"] for i in insp.get_indexes(t)),
        )
    return out


def test_empty_database_upgrades_to_head(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    assert not set(inspect(engine).get_table_names()) & TABLES
    before, after = upgrade(engine)
    assert before is None and after == head_revision()
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrations_create_exactly_the_declared_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                metadata)
    engine.dispose()
    assert diff == []


def test_database_at_head_is_untouched(db_url: str) -> None:
    st = Store.open(db_url)
    st.record_risk_event(1, "marker", "row written before the second open")
    st.close()
    engine = make_engine(db_url)
    schema_before = _schema(engine)
    rev_before = current_revision(engine)
    engine.dispose()
    db_file = Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite") else None
    digest = hashlib.sha256(db_file.read_bytes()).hexdigest() if db_file else None

    st = Store.open(db_url)  # opening migrates automatically: here it must do nothing
    engine = make_engine(db_url)
    assert upgrade(engine) == (rev_before, rev_before)
    assert _schema(engine) == schema_before
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from risk_events")).scalar_one() == 1
        assert conn.execute(text("select count(*) from alembic_version")).scalar_one() == 1
    engine.dispose()
    st.close()
    if db_file is not None:
        assert hashlib.sha256(db_file.read_bytes()).hexdigest() == digest


def test_sqlite_is_wal_with_foreign_keys(tmp_path: Path) -> None:
    st = Store.open(f"sqlite:///{tmp_path / 'x' / 'trader.db'}")
    with st.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        with pytest.raises(Exception, match="FOREIGN KEY"):
            conn.execute(text("insert into order_events (client_order_id, ts, to_status, "
                              "filled_quantity, broker_order_id, reason) "
                              "values ('nope', 1, 'FILLED', 0, '', '')"))
    st.close()


def test_default_location_is_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADER_DATABASE_URL", raising=False)
    url = resolve_url(None, tmp_path / "data")
    assert url == f"sqlite:///{tmp_path / 'data' / 'trader.db'}"
    monkeypatch.setenv("TRADER_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert resolve_url(None, tmp_path) == "postgresql+psycopg://u@h/db"


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert list((MIGRATIONS / "versions").glob("*.py"))
    pyproject = (Path(__file__).parents[3] / "pyproject.toml").read_text()
    assert '"trader.store" = ["migrations/*.py"' in pyproject


def test_passwords_never_reach_messages() -> None:
    url = "postgresql+psycopg://trader:s3cr3t@127.0.0.1:1/nope"
    assert "s3cr3t" not in redact_url(url)
    with pytest.raises(StoreError) as err:
        Store.open(url)
    assert "s3cr3t" not in str(err.value)
    assert "127.0.0.1" in str(err.value)


def test_config_refuses_a_password_in_database_url(tmp_path: Path) -> None:
    from trader.engine.config import load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "instruments: [{id: A, symbol: A, venue: X, asset_class: equity}]\n"
        "store: {database_url: 'postgresql+psycopg://trader:s3cr3t@db/x'}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "TRADER_DATABASE_URL" in str(err.value)
    assert "s3cr3t" not in str(err.value)
    assert StoreConfig(database_url="postgresql+psycopg://trader@db/x").database_url


def test_unsupported_backend_is_named() -> None:
    with pytest.raises(StoreError, match="unsupported backend 'mysql'"):
        make_engine("mysql://u@h/db")


def test_plain_postgresql_urls_get_the_installed_driver() -> None:
    # One rule for the store and the optimiser's storage: psycopg 3 is what is installed.
    from sqlalchemy.engine import make_url

    plain = "postgresql://trader:p%40ss@db:5433/x?options=-csearch_path%3Ds1&connect_timeout=3"
    fixed = make_url(with_psycopg(plain, make_url(plain)))
    assert fixed.drivername == "postgresql+psycopg"
    assert (fixed.username, fixed.password, fixed.host, fixed.port, fixed.database) == (
        "trader", "p@ss", "db", 5433, "x")
    assert dict(fixed.query) == {"options": "-csearch_path=s1", "connect_timeout": "3"}
    for named in ("postgresql+psycopg://trader@db/x?sslmode=require",
                  "postgresql+psycopg2://trader@db/x"):
        assert with_psycopg(named, make_url(named)) == named  # as written


def test_head_revision_is_the_newest_script() -> None:
    # The open path compares the database with HEAD_REVISION without loading Alembic:
    # a new migration script must move it, or databases would stay at the old head.
    from trader.store.migrate import scripted_head

    assert head_revision() == scripted_head()


def test_database_behind_head_is_upgraded_through_alembic(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0002")
    assert current_revision(engine) == "0002"
    engine.dispose()
    Store.open(db_url).close()  # the check sees 0002 != head and migrates
    engine = make_engine(db_url)
    assert current_revision(engine) == head_revision()
    assert "fee_asset" in {c["name"] for c in inspect(engine).get_columns("fills")}
    engine.dispose()


def test_database_at_an_unknown_revision_is_not_taken_for_head(db_url: str) -> None:
    # A newer version's database: this version cannot know its schema, so the open fails
    # (in Alembic) instead of the at-head shortcut accepting it.
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = '9999'"))
    engine.dispose()
    with pytest.raises(Exception, match="9999"):
        Store.open(db_url)
