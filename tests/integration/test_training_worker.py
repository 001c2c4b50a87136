"""Acceptance: a job posted over REST runs on a real RQ worker process (``python -m scalper_trainer``)
on synthetic SPY+QQQ, survives a SIGKILL of its worker (the retry resumes from the last checkpoint,
the step count continues) and registers exactly one model with diagnostics at every checkpoint.

``SCALPER_TRAINING_ACCEPTANCE_STEPS=50000`` runs the full 50k-step job (checkpoints 5k, 10k, 25k,
50k); the default is a short job over the same machinery.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import Queue
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import func, select

from scalper_cli.processes import free_port
from scalper_shared.core.policy_net import NumpyPolicy
from scalper_shared.db import make_engine
from scalper_shared.db.models import models
from scalper_shared.schema.training import TRAINING_QUEUE, TrainConfig
from tests.integration.training_support import WorkerProcess, headers, policy_client, private_redis_server
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
logger = logging.getLogger(__name__)

STEPS = int(os.environ.get("SCALPER_TRAINING_ACCEPTANCE_STEPS", "3000"))
CONFIG: dict[str, Any] = {
    "symbols": ["SPY", "QQQ"], "data_source": "synthetic",
    "train_from": "2025-07-01", "train_to": "2025-07-31", "validation_from": "2025-08-01", "validation_to": "2025-08-08",
    "total_timesteps": STEPS, "checkpoint_every": 25_000 if STEPS >= 50_000 else 1_000, "n_envs": 4, "device": "cpu",
}
if STEPS < 50_000:  # the short run uses a lighter PPO so that the suite stays quick
    CONFIG["ppo"] = {"n_steps": 128, "batch_size": 128, "n_epochs": 2, "net_arch": [64, 64]}


@pytest.fixture
def stack(tmp_path: Path, migrated_database_url: str) -> Iterator[dict[str, Any]]:
    with private_redis_server(tmp_path) as redis_url:
        env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": migrated_database_url,
               "ARTIFACTS_DIR": str(tmp_path / "artifacts"), "TRAINER_HTTP_PORT": str(free_port()),
               "TRAINER_TORCH_THREADS": "1", "LOG_FORMAT": "text", "TRAINER_JOB_MONITORING_INTERVAL_S": "5"}
        workers: list[WorkerProcess] = []
        with policy_client(redis_url, migrated_database_url, tmp_path / "artifacts") as api:
            yield {"api": api, "env": env, "workers": workers, "redis_url": redis_url, "tmp": tmp_path}
        for worker in workers:
            worker.stop()


def _view(api: Any, job_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/training-jobs/{job_id}", headers=headers("reader-key"))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_killed_job_resumes_from_its_checkpoint_and_registers_one_model(stack: dict[str, Any]) -> None:
    api, tmp = stack["api"], stack["tmp"]
    first = WorkerProcess(stack["env"], tmp / "worker1.log")
    stack["workers"].append(first)
    first.start()
    posted = api.post("/v1/training-jobs", json=CONFIG, headers=headers("trainer-key", **{"Idempotency-Key": "acc"}))
    assert posted.status_code == 202, posted.text
    job_id = posted.json()["id"]
    checkpoints = tmp / "artifacts" / "jobs" / job_id / "checkpoints"
    schedule = TrainConfig.model_validate(CONFIG).checkpoint_steps()

    wait_until(lambda: len(_view(api, job_id)["diagnostics"]) >= 1, 600, "first checkpoint", 0.5)
    view = _view(api, job_id)
    assert view["state"] == "running" and view["progress"]["steps"] >= schedule[0]
    scraped = httpx.get(f"http://127.0.0.1:{stack['env']['TRAINER_HTTP_PORT']}/metrics", timeout=10).text
    assert 'scalper_trainer_jobs{queue="training",state="running"} 1.0' in scraped
    assert f'scalper_trainer_last_checkpoint_step{{job_id="{job_id}"}}' in scraped
    assert re.search(rf'scalper_trainer_last_checkpoint_diagnostic{{(field="hold_share",job_id="{job_id}"|'
                     rf'job_id="{job_id}",field="hold_share")}}', scraped), scraped[-2000:]
    speed = re.search(rf'scalper_trainer_job_steps_per_second{{job_id="{job_id}"}} ([0-9.e+-]+)', scraped)
    assert speed and float(speed.group(1)) > 0, scraped[-2000:]
    first_checkpoint = checkpoints / f"step_{schedule[0]:09d}.zip"
    written_at = first_checkpoint.stat().st_mtime_ns
    first.kill()

    connection = redis.Redis.from_url(stack["redis_url"])
    queue = Queue(TRAINING_QUEUE, connection=connection, serializer=JSONSerializer)
    heartbeat_ttl = int(stack["env"]["TRAINER_JOB_MONITORING_INTERVAL_S"]) + 60
    # What RQ's maintenance does once the dead worker's heartbeat expires: requeue the abandoned job.
    StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + heartbeat_ttl + 1)
    assert _view(api, job_id)["retries_left"] == 2
    second = WorkerProcess(stack["env"], tmp / "worker2.log")
    stack["workers"].append(second)
    second.start()

    again = api.post("/v1/training-jobs", json=CONFIG, headers=headers("trainer-key", **{"Idempotency-Key": "acc"}))
    assert again.json()["id"] == job_id
    wait_until(lambda: _view(api, job_id)["state"] in ("finished", "failed"), 1200, "job end", 1.0)
    view = _view(api, job_id)
    assert view["state"] == "finished", (view, (tmp / "worker2.log").read_text()[-3000:])
    assert [d["step"] for d in view["diagnostics"]] == list(schedule)
    assert view["progress"]["steps"] == STEPS
    assert "resuming from checkpoint" in (tmp / "worker2.log").read_text()
    assert first_checkpoint.stat().st_mtime_ns == written_at  # not retrained from step 0

    engine = make_engine(stack["env"]["DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models)).scalar_one() == 1
        row = conn.execute(select(models)).one()
    engine.dispose()
    assert row.id == view["model_id"] and row.job_id == job_id and row.total_timesteps == STEPS
    artifact = Path(row.artifact_path)
    assert (artifact / "model.zip").is_file() and (artifact / "manifest.json").is_file()
    assert NumpyPolicy.load(artifact / "policy.npz").n_actions == 6
    listed = api.get("/v1/models", headers=headers("reader-key")).json()
    assert [m["id"] for m in listed] == [row.id]
    logger.info("job %s: %d steps, progress %s, model metrics %s, diagnostics %s", job_id, STEPS,
                view["progress"], row.metrics, view["diagnostics"])
