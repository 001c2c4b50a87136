"""Engine construction and the packaged migrations (no database needed)."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory

from scalper_shared.db import head_revision, make_engine
from scalper_shared.db.engine import database_url
from scalper_shared.db.migrate import MIGRATIONS_DIR, alembic_config


@pytest.mark.parametrize("url", ["postgres://u@h:5432/db", "postgresql://u@h:5432/db",
                                 "postgresql+psycopg://u@h:5432/db"])
def test_every_postgres_url_form_uses_psycopg3(url: str) -> None:
    assert database_url(url).render_as_string() == "postgresql+psycopg://u@h:5432/db"


def test_other_drivers_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'postgresql\\+psycopg2'"):
        database_url("postgresql+psycopg2://u@h/db")


def test_engine_pings_pooled_connections_before_use() -> None:
    engine = make_engine("postgresql://u@h:5432/db")
    assert engine.pool._pre_ping is True
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_revision("0001").down_revision is None  # bars: the first revision
    assert script.get_revision(head_revision()) is not None
