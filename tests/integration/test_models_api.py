"""The models registry API: list (read scope) and promote (admin scope, one promoted model at a time)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from scalper_shared.db import make_engine
from scalper_shared.db.models import models
from tests.integration.training_support import headers, policy_client, private_redis_server

pytestmark = pytest.mark.integration


def _row(model_id: str, created: datetime) -> dict[str, object]:
    return {"id": model_id, "job_id": f"job-{model_id}", "created_at": created, "config": {"seed": 0},
            "spec_hash": "abc", "train_from": date(2025, 7, 1), "train_to": date(2025, 7, 31),
            "validation_from": date(2025, 8, 1), "validation_to": date(2025, 8, 8), "total_timesteps": 5000,
            "metrics": {"steps": 5000}, "artifact_path": f"/artifacts/{model_id}"}


@pytest.fixture
def api(migrated_database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    engine = make_engine(migrated_database_url)
    with engine.begin() as connection:
        connection.execute(insert(models), [_row("m-old", datetime(2025, 1, 1, tzinfo=UTC)),
                                            _row("m-new", datetime(2025, 2, 1, tzinfo=UTC))])
    engine.dispose()
    with private_redis_server(tmp_path) as redis_url, \
            policy_client(redis_url, migrated_database_url, tmp_path) as client:
        yield client


def _promoted(database_url: str) -> list[str]:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        ids = list(connection.execute(select(models.c.id).where(models.c.promoted)).scalars())
    engine.dispose()
    return ids


def test_models_are_listed_newest_first(api: TestClient) -> None:
    listed = api.get("/v1/models", headers=headers("reader-key")).json()
    assert [m["id"] for m in listed] == ["m-new", "m-old"]
    assert listed[0]["promoted"] is False and listed[0]["status"] == "ready"
    assert listed[0]["metrics"] == {"steps": 5000}


def test_promotion_keeps_exactly_one_promoted_model(api: TestClient, migrated_database_url: str) -> None:
    assert api.post("/v1/models/m-old/promote", headers=headers("admin-key")).json()["promoted"] is True
    assert _promoted(migrated_database_url) == ["m-old"]
    api.post("/v1/models/m-new/promote", headers=headers("admin-key"))
    assert _promoted(migrated_database_url) == ["m-new"]
    api.post("/v1/models/m-new/promote", headers=headers("admin-key"))
    assert _promoted(migrated_database_url) == ["m-new"]


def test_promotion_needs_the_admin_scope_and_a_known_model(api: TestClient, migrated_database_url: str) -> None:
    assert api.post("/v1/models/m-old/promote", headers=headers("trainer-key")).status_code == 403
    assert api.post("/v1/models/m-missing/promote", headers=headers("admin-key")).status_code == 404
    assert api.get("/v1/models", headers=headers("admin-key")).status_code == 200
    assert _promoted(migrated_database_url) == []
