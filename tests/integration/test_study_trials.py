"""A study's trial jobs run in this process (the worker's code without RQ) on the synthetic market:
a trial trains every walk-forward fold with checkpoints, reports them, and tells Optuna the mean
after-cost validation P&L per account-day; a slot never makes two trials; the MedianPruner stops a
trial below the median; the finalise step marks lost trials, registers the best model under the
study's name and writes the report with every section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import select

from scalper_shared import studies
from scalper_shared.db import make_engine
from scalper_shared.db.models import models, training_diagnostics
from scalper_shared.schema.studies import SearchSpace, StudyRequest, fold_job_id
from scalper_trainer.local import LocalStatus, StopFlag
from scalper_trainer.studies.finalise import LOST_TRIAL, finalise
from scalper_trainer.studies.report import SECTIONS
from scalper_trainer.studies.trial import TrialContext, run_trial

pytestmark = pytest.mark.integration

SPACE = SearchSpace.model_validate({"params": [
    {"name": "ppo.learning_rate", "type": "float", "low": 1e-4, "high": 1e-3, "log": True},
    {"name": "ppo.n_epochs", "type": "int", "low": 1, "high": 2},
    {"name": "ppo.net_arch", "type": "categorical", "choices": [[16, 16], [32]]},
    {"name": "reward.hold_tax", "type": "float", "low": -0.001, "high": 0.0},
]})
STEPS = 2048


def _request(name: str, **extra: Any) -> StudyRequest:
    return StudyRequest.model_validate({
        "name": name, "trials": 2, "timesteps": STEPS, "symbols": ["SPY"], "start": "2025-07-07",
        "end": "2025-07-18", "folds": 2, "data_source": "synthetic", "space": SPACE.model_dump(mode="json"),
        "checkpoint_every": 1024, "device": "cpu", **extra})


def _ctx(database_url: str, tmp_path: Path, job_id: str) -> TrialContext:
    return TrialContext(database_url=database_url, engine=make_engine(database_url),
                        artifacts_dir=tmp_path / "artifacts", job_id=job_id, status=LocalStatus(), cancel=StopFlag())


@pytest.fixture(autouse=True)
def _small_rollouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rollouts of 4 x 128 so that 2,048 steps make several PPO updates and checkpoints."""
    from scalper_shared.schema import studies as schema

    original = schema.StudyRequest.base_config

    def base_config(self: StudyRequest) -> Any:
        config = original(self)
        return config.model_copy(update={"n_envs": 4, "ppo": config.ppo.model_copy(
            update={"n_steps": 128, "batch_size": 128})})

    monkeypatch.setattr(schema.StudyRequest, "base_config", base_config)


@pytest.mark.slow
def test_a_trial_trains_every_fold_and_tells_the_walk_forward_pnl(migrated_database_url: str,
                                                                   tmp_path: Path) -> None:
    storage = studies.open_storage(migrated_database_url)
    studies.create(storage, _request("wf"))
    outcome = run_trial("wf", 0, _ctx(migrated_database_url, tmp_path, "job-a"))
    assert outcome["state"] == "COMPLETE" and outcome["ran"]

    study = studies.load(storage, "wf")
    assert study is not None
    (trial,) = study.get_trials()
    assert trial.state is TrialState.COMPLETE and trial.user_attrs["slot"] == 0
    walk = trial.user_attrs["walk_forward"]
    assert trial.value == pytest.approx(walk["mean_daily_pnl"])
    assert [f["fold"] for f in walk["per_fold"]] == [0, 1]
    assert walk["per_fold"][0]["test"][0] > walk["per_fold"][0]["train"][1]  # validated after training
    assert walk["days"] == len(walk["daily"]) > 0
    assert set(trial.user_attrs["baselines"]) >= {"hold", "random", "momentum_rule"}
    hold = trial.user_attrs["baselines"]["hold"]
    assert hold["mean_daily_pnl"] == 0.0 and hold["ci_low"] <= hold["mean_daily_difference"] <= hold["ci_high"]
    assert set(trial.user_attrs["seed_criteria"]) == {"hold_share_at_most_35pct", "buy_share_at_least_65pct",
                                                      "setup_buy_rate_at_least_80pct"}
    assert "setup_buy_rate" in trial.user_attrs and trial.user_attrs["trades_per_day"] >= 0
    assert "reward_spearman" in trial.user_attrs
    # checkpoints 1024 and 2048 of each fold, reported at fold x timesteps + step
    assert sorted(trial.intermediate_values) == [1024, 2048, STEPS + 1024, STEPS + 2048]
    assert set(trial.params) == {p.name for p in SPACE.params}

    engine = make_engine(migrated_database_url)
    with engine.connect() as connection:
        runs = set(connection.execute(select(training_diagnostics.c.job_id)).scalars())
        assert runs == {fold_job_id("job-a", 0), fold_job_id("job-a", 1)}
        assert connection.execute(select(models)).first() is None  # folds register nothing

    again = run_trial("wf", 0, _ctx(migrated_database_url, tmp_path, "job-a"))
    assert again == {"trial": trial.number, "state": "COMPLETE", "value": trial.value, "ran": False}
    assert len(study.get_trials()) == 1  # the slot never makes a second trial

    lost = study.ask()  # a trial whose job died for good
    result = finalise("wf", database_url=migrated_database_url, engine=engine, artifacts_dir=tmp_path / "artifacts")
    assert result["lost_trials"] == [lost.number]
    lost_trial = study.get_trials()[lost.number]
    assert lost_trial.state is TrialState.FAIL and lost_trial.user_attrs["error"] == LOST_TRIAL
    with engine.connect() as connection:
        row = connection.execute(select(models)).one()
    assert row.name == "wf" and row.id == result["best_model_id"]
    assert row.job_id == fold_job_id("job-a", 1)  # the last fold's model
    assert study.user_attrs[studies.BEST_MODEL_ATTR] == row.id
    html = Path(result["report"]).read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    assert "Plotly.newPlot" in html and "plotly.js" in html.lower()
    assert "Best trial 0" in html and "momentum_rule" in html

    finalise("wf", database_url=migrated_database_url, engine=engine, artifacts_dir=tmp_path / "artifacts")
    with engine.connect() as connection:
        assert len(connection.execute(select(models)).all()) == 1  # idempotent
    engine.dispose()


def test_the_median_pruner_stops_a_trial_below_earlier_trials(migrated_database_url: str, tmp_path: Path) -> None:
    storage = studies.open_storage(migrated_database_url)
    study = studies.create(storage, _request("pruned", pruner={"n_startup_trials": 1}))
    earlier = study.ask()  # an earlier trial that made a fortune at every reported step
    for step in (1024, 2048, STEPS + 1024, STEPS + 2048):
        earlier.report(1e9, step)
    study.tell(earlier, 1e9)

    outcome = run_trial("pruned", 1, _ctx(migrated_database_url, tmp_path, "job-p"))
    assert outcome["state"] == "PRUNED"
    trial = [t for t in studies.load(storage, "pruned").get_trials() if t.user_attrs.get("slot") == 1][0]
    assert trial.state is TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [1024]  # stopped at its first checkpoint
    engine = make_engine(migrated_database_url)
    with engine.connect() as connection:
        steps = list(connection.execute(select(training_diagnostics.c.step)
                                        .where(training_diagnostics.c.job_id == fold_job_id("job-p", 0))).scalars())
    engine.dispose()
    assert steps == [1024]
    assert not (tmp_path / "artifacts" / "jobs" / fold_job_id("job-p", 1)).exists()  # fold 1 never trained


def test_a_failing_last_attempt_marks_the_trial_failed(migrated_database_url: str, tmp_path: Path) -> None:
    storage = studies.open_storage(migrated_database_url)
    studies.create(storage, _request("nobars", data_source="database"))  # an empty database: no bars
    ctx = _ctx(migrated_database_url, tmp_path, "job-f")
    ctx.retries_left = lambda: 1
    with pytest.raises(ValueError, match="no bars"):
        run_trial("nobars", 0, ctx)
    (trial,) = studies.load(storage, "nobars").get_trials()
    assert trial.state is TrialState.RUNNING  # RQ will retry: the same trial goes on
    ctx.retries_left = lambda: 0
    with pytest.raises(ValueError, match="no bars"):
        run_trial("nobars", 0, ctx)
    (trial,) = studies.load(storage, "nobars").get_trials()
    assert trial.state is TrialState.FAIL and "no bars" in trial.user_attrs["error"]


def test_optuna_keeps_its_tables_in_its_own_schema(migrated_database_url: str) -> None:
    from scalper_shared.db import current_revision, head_revision

    studies.open_storage(migrated_database_url)
    assert current_revision(migrated_database_url) == head_revision()  # the project's alembic_version untouched
    assert optuna.get_all_study_summaries(studies.open_storage(migrated_database_url)) == []


def test_a_storage_on_an_unmigrated_database_is_refused_saying_so(database_url: str) -> None:
    with pytest.raises(RuntimeError, match="no schema 'optuna': run the migrations first"):
        studies.open_storage(database_url)
