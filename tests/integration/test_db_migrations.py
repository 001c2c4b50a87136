"""Alembic migrations against a real, freshly created PostgreSQL database."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from scalper_shared.db import Base, current_revision, downgrade, head_revision, make_engine, migrate

pytestmark = pytest.mark.integration


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_creates_bars_on_a_fresh_database(database_url: str) -> None:
    assert current_revision(database_url) is None
    migrate(database_url)
    assert current_revision(database_url) == head_revision()
    assert {"alembic_version", "bars"} <= _tables(database_url)


def test_migrating_twice_changes_nothing_and_keeps_rows(database_url: str) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bars (symbol, start, open, high, low, close, session, source)"
                              " VALUES ('SPY', :start, 1, 2, 1, 2, 'regular', 'test')"),
                         {"start": datetime(2025, 7, 1, 13, 30, tzinfo=UTC)})
        migrate(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM bars")).scalar_one() == 1
    finally:
        engine.dispose()
    assert current_revision(database_url) == head_revision()


def test_downgrade_to_base_removes_bars_and_upgrade_restores_it(migrated_database_url: str) -> None:
    downgrade(migrated_database_url, "base")
    assert current_revision(migrated_database_url) is None
    assert "bars" not in _tables(migrated_database_url)
    migrate(migrated_database_url)
    assert "bars" in _tables(migrated_database_url)


def test_models_match_the_migrated_schema(migrated_database_url: str) -> None:
    engine = make_engine(migrated_database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_migration_logs_whether_bars_is_a_hypertable(database_url: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="scalper_shared.db.timescale"):
        migrate(database_url)
    messages = [r.getMessage() for r in caplog.records if r.name == "scalper_shared.db.timescale"]
    hypertable = any("hypertable" in m for m in messages)
    assert hypertable != any("plain PostgreSQL table" in m for m in messages)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            installed = conn.execute(
                text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")).scalar_one()
            assert bool(installed) == hypertable
            if hypertable:
                assert conn.execute(text("SELECT count(*) FROM timescaledb_information.hypertables"
                                         " WHERE hypertable_name = 'bars'")).scalar_one() == 1
    finally:
        engine.dispose()


def test_services_migrating_at_the_same_time_take_turns(database_url: str) -> None:
    script = "import sys; from scalper_shared.db import migrate; migrate(sys.argv[1])"
    processes = [subprocess.Popen([sys.executable, "-c", script, database_url], stderr=subprocess.PIPE,
                                  text=True) for _ in range(3)]
    failures = [p.stderr.read() for p in processes if p.wait(timeout=120) != 0]  # type: ignore[union-attr]
    assert failures == []
    assert current_revision(database_url) == head_revision()


def test_threads_of_one_process_migrating_at_once_all_succeed(database_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(database_url)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert current_revision(database_url) == head_revision()
