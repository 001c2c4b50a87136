"""Acceptance of issue #19: a study of 6 trials x 20,000 steps over 2 walk-forward folds on the real
SPY and QQQ bars of ``../shared/data``, created with ``scalper study create`` on the real policy API
and run by two trainer worker processes at once. One worker is SIGKILLed while its trial is
training; RQ's maintenance (the abandoned-job cleanup) requeues that trial's job, a fresh worker
continues the same trial from its checkpoints, and the study ends with every trial exactly once
(complete or pruned, none lost, none run twice), the best model registered under the study's name
and the report written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from optuna.trial import TrialState
from rq import Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import select

from scalper_cli.processes import free_port
from scalper_policy.app import build_policy_app
from scalper_policy.settings import PolicySettings
from scalper_shared import studies
from scalper_shared.db import make_engine
from scalper_shared.db.models import models, training_diagnostics
from scalper_shared.runtime.api_security import ApiKeyRecord, hash_key
from scalper_shared.runtime.bootstrap import connect
from scalper_shared.schema.studies import finalise_job_id, fold_job_id, trial_job_id
from scalper_trainer.studies.report import SECTIONS
from tests.integration.eval_support import invoke
from tests.integration.training_support import KEYS, WorkerProcess, private_redis_server
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
logger = logging.getLogger(__name__)

NAME, TRIALS, STEPS, FOLDS = "acceptance", 6, 20_000, 2
WINDOW = ("2025-08-11", "2025-09-05")  # 19 trading days: 3 blocks of 6 (train 6, validate the next 6)
FILES = {"SPY": "SPY_1m_2025-08_2025-10.csv.gz", "QQQ": "QQQ_1m_2025-08_2025-10.csv.gz"}



@contextmanager
def served_policy_api(redis_url: str, database_url: str, artifacts_dir: Path) -> Iterator[str]:
    """The real policy app on a real port (the CLI talks HTTP to it); yields its URL."""
    settings = PolicySettings(
        redis_url=redis_url, database_url=database_url, artifacts_dir=artifacts_dir, api_rate_limit="1000/1s",
        decisions_enabled=False,
        api_keys=[ApiKeyRecord(name=k, sha256=hash_key(k), scopes=frozenset(s)) for k, s in KEYS.items()])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_policy_app(settings, connect(settings)), host="127.0.0.1",
                                           port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "policy API", 0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _running_job_of(connection: redis.Redis, pid: int) -> Job | None:
    """The job the worker process ``pid`` is running, once it has written a checkpoint's diagnostics
    (the trial resets them when a fold starts)."""
    for worker in Worker.all(connection=connection):
        if worker.pid == pid and worker.get_current_job_id():
            job = Job.fetch(worker.get_current_job_id(), connection=connection, serializer=JSONSerializer)
            if job.meta.get("diagnostics"):
                return job
    return None


def test_a_study_on_two_workers_runs_every_trial_once_through_a_killed_worker(
        tmp_path: Path, migrated_database_url: str, shared_data: Path) -> None:
    artifacts = tmp_path / "artifacts"
    with private_redis_server(tmp_path) as redis_url, \
            served_policy_api(redis_url, migrated_database_url, artifacts) as api_url:
        env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": migrated_database_url,
               "ARTIFACTS_DIR": str(artifacts), "TRAINER_TORCH_THREADS": "1", "LOG_FORMAT": "text",
               "TRAINER_JOB_MONITORING_INTERVAL_S": "5", "POLYGON_API_KEY": ""}
        cli = {**env, "SCALPER_API_URL": api_url, "SCALPER_API_KEY": "trainer-key"}
        for symbol, name in FILES.items():
            invoke(["ingest", "file", str(shared_data / name), "--symbol", symbol], env)
        workers = [WorkerProcess({**env, "TRAINER_HTTP_PORT": str(free_port())}, tmp_path / f"worker{i}.log")
                   for i in (1, 2, 3)]
        try:
            _run_the_study(workers, cli, redis_url)
        finally:
            for worker in workers:
                worker.stop()
        _check_the_outcome(migrated_database_url, redis_url, cli, tmp_path, workers)


def _run_the_study(workers: list[WorkerProcess], cli: dict[str, str], redis_url: str) -> None:
    first, second, replacement = workers
    first.start()
    second.start()
    started = time.monotonic()
    invoke(["study", "create", "--name", NAME, "--trials", str(TRIALS), "--timesteps", str(STEPS), "--folds",
            str(FOLDS), "--symbols", "SPY,QQQ", "--from", WINDOW[0], "--to", WINDOW[1], "--checkpoint-every", "5000",
            "--pruner-warmup-steps", str(STEPS + 1)], cli)  # prune only in the second fold
    connection = redis.Redis.from_url(redis_url)
    assert first.proc is not None
    victim = wait_until(lambda: _running_job_of(connection, first.proc.pid), 1800, "a checkpoint on worker 1", 1.0)
    fold = int(victim.meta["fold"])
    assert fold == 0  # the first trials' first fold: no pruning there, so the retry must train on
    first.kill()
    logger.info("killed worker 1 after %.0f s while it ran %s (trial %s, fold %d, checkpoint steps %s)",
                time.monotonic() - started, victim.id, victim.meta.get("trial"), fold,
                [d["step"] for d in victim.meta["diagnostics"]])

    # The policy service's abandoned-job sweep (RQ's cleanup) hands the dead worker's job to its retry.
    wait_until(lambda: Job.fetch(victim.id, connection=connection, serializer=JSONSerializer).retries_left == 2,
               300, "the dead worker's job to be re-queued", 1.0)
    replacement.start()

    final = finalise_job_id(NAME)
    wait_until(lambda: Job.fetch(final, connection=connection, serializer=JSONSerializer).get_status()
               in (JobStatus.FINISHED, JobStatus.FAILED), 3600, "the study to end", 2.0)
    logger.info("study ended after %.0f s", time.monotonic() - started)
    assert Job.fetch(final, connection=connection, serializer=JSONSerializer).get_status() == JobStatus.FINISHED
    logs = "".join(w.log.read_text() for w in workers)
    run = fold_job_id(victim.id, fold)
    assert f"resuming trial {victim.meta['trial']}" in logs  # the same trial, not a new one
    assert logs.count(f"job {run}: new model") == 1  # the killed fold never started again from step 0
    assert f"job {run}: resuming from checkpoint" in logs  # it went on from its newest checkpoint


def _check_the_outcome(database_url: str, redis_url: str, cli: dict[str, str], tmp_path: Path,
                       workers: list[WorkerProcess]) -> None:
    connection = redis.Redis.from_url(redis_url)
    study = studies.load(studies.open_storage(database_url), NAME)
    assert study is not None
    trials = study.get_trials()
    assert sorted(t.user_attrs["slot"] for t in trials) == list(range(TRIALS))  # every slot once, no extra trial
    for trial in trials:
        job = Job.fetch(trial.user_attrs["job_id"], connection=connection, serializer=JSONSerializer)
        assert job.id == trial_job_id(NAME, trial.user_attrs["slot"])
        assert job.get_status() == JobStatus.FINISHED and job.return_value()["ran"]
    states = {t.number: t.state for t in trials}
    assert set(states.values()) <= {TrialState.COMPLETE, TrialState.PRUNED}, states
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert complete
    for trial in trials:
        full = trial.state is TrialState.COMPLETE
        assert len(trial.intermediate_values) == 2 * 4 if full else 1 <= len(trial.intermediate_values) <= 2 * 4
        assert ("walk_forward" in trial.user_attrs) is full  # a pruned trial is never evaluated

    engine = make_engine(database_url)
    with engine.connect() as c:
        rows = c.execute(select(models)).all()
        runs = set(c.execute(select(training_diagnostics.c.job_id)).scalars())
    engine.dispose()
    assert len(rows) == 1 and rows[0].name == NAME and rows[0].id == study.user_attrs[studies.BEST_MODEL_ATTR]
    best = max(complete, key=lambda t: t.value)
    assert rows[0].job_id == fold_job_id(best.user_attrs["job_id"], FOLDS - 1)
    assert runs <= {fold_job_id(t.user_attrs["job_id"], k) for t in trials for k in range(FOLDS)}

    status = invoke(["study", "status", NAME], cli)
    assert "COMPLETE" in status and f"best trial {best.number}" in status
    assert rows[0].id in invoke(["study", "best", NAME], cli)
    out = tmp_path / "study.html"
    invoke(["study", "report", NAME, "--out", str(out)], cli)
    html = out.read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    view: dict[str, Any] = httpx.get(f"{cli['SCALPER_API_URL']}/v1/studies/{NAME}",
                                     headers={"X-API-Key": "reader-key"}, timeout=30).json()
    logger.info("study %s: states %s; best trial %d %.2f per account-day (CI %.2f..%.2f), model %s; report %s",
                NAME, view["states"], best.number, best.value, best.user_attrs["walk_forward"]["ci_low"],
                best.user_attrs["walk_forward"]["ci_high"], rows[0].id, out)
    for trial in view["trials"]:
        logger.info("trial %d slot %d %s value %s params %s attrs %s", trial["number"], trial["slot"], trial["state"],
                    trial["value"], trial["params"], {k: v for k, v in trial["attrs"].items()
                                                      if k in ("setup_buy_rate", "trades_per_day", "reward_spearman",
                                                               "seed_criteria", "baselines")})
    (tmp_path.parent / "study-acceptance-report.html").write_text(html)
