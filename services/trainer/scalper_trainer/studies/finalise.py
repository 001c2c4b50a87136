"""The end of a study: one RQ job that depends on every trial job (``Dependency(allow_failure=True)``),
so RQ enqueues it exactly when the last trial job has ended, finished or failed for good.

It marks every trial still RUNNING as FAIL (its job ended without telling Optuna: the worker was lost
and RQ's retries ran out), registers the best trial's model under the study's name (the model of
its last fold, trained on the most recent block; one ``models`` row, ``name`` = the study), and
writes the HTML report to ``ARTIFACTS_DIR/studies/<name>/report.html``. Running it again changes
nothing that is already done.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy import Engine

from scalper_shared import studies
from scalper_trainer.registry import read_manifest, register_model
from scalper_trainer.studies.report import write_study_report

logger = logging.getLogger(__name__)

LOST_TRIAL = "its job ended without finishing the trial (worker lost and RQ's retries exhausted)"


def report_dir(artifacts_dir: Path, name: str) -> Path:
    return artifacts_dir / "studies" / name


def fail_lost_trials(study: optuna.Study) -> list[int]:
    """Every trial still RUNNING or WAITING is FAIL (called once every trial job has ended)."""
    lost = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        optuna.Trial(study, trial._trial_id).set_user_attr("error", LOST_TRIAL)
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        lost.append(trial.number)
    if lost:
        logger.warning("study %s: trials %s marked FAIL: %s", study.study_name, lost, LOST_TRIAL)
    return lost


def register_best(study: optuna.Study, engine: Engine) -> str | None:
    """Register the best trial's last-fold model under the study's name; its model id (None: no trial completed)."""
    best = studies.best_trial(study)
    if best is None:
        logger.warning("study %s: no trial completed, no model registered", study.study_name)
        return None
    artifact = Path(best.user_attrs["artifacts"][-1])
    model_id = register_model(engine, read_manifest(artifact), artifact, name=study.study_name)
    study.set_user_attr(studies.BEST_MODEL_ATTR, model_id)
    logger.info("study %s: best trial %d (%.2f per account-day) registered as model %s", study.study_name,
                best.number, best.value, model_id)
    return model_id


def finalise(name: str, *, database_url: str, engine: Engine, artifacts_dir: Path) -> dict[str, Any]:
    storage = studies.open_storage(database_url)
    study = studies.load(storage, name)
    if study is None:
        raise ValueError(f"no study {name!r}")
    lost = fail_lost_trials(study)
    model_id = register_best(study, engine)
    paths = write_study_report(study, engine, report_dir(artifacts_dir, name))
    study.set_user_attr(studies.REPORT_ATTR, str(paths))
    return {"study": name, "lost_trials": lost, "best_model_id": model_id, "report": str(paths)}


def run_finalise_job(name: str) -> dict[str, Any]:
    """RQ entry point (queue ``training``): finalise study ``name``."""
    from scalper_shared.db import make_engine
    from scalper_shared.settings import load_settings
    from scalper_trainer.settings import TrainerSettings

    settings = load_settings(TrainerSettings)
    engine = make_engine(settings.database_url)
    try:
        return finalise(name, database_url=settings.database_url, engine=engine, artifacts_dir=settings.artifacts_dir)
    finally:
        engine.dispose()
