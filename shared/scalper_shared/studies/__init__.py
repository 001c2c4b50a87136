"""Optuna studies in the project's PostgreSQL: storage, creation, sampling a trial, and views.

Needs the ``studies`` extra (``scalper-shared[studies]``: optuna, PyYAML); the policy API and the
trainer depend on it, nothing here imports torch.

**Storage.** The study lives in Optuna's RDB storage on ``DATABASE_URL``, in the PostgreSQL schema
``optuna`` (created by the project's migration ``study0001``), because Optuna keeps its own Alembic
``alembic_version`` table and the project's would otherwise collide with it. Optuna creates its
tables there the first time a storage is opened (under an advisory lock, so two processes never
race on ``CREATE TABLE``). Every process on every host that reaches the database shares the study.

**A study** is created with its request (:class:`~scalper_shared.schema.studies.StudyRequest`, the
search space resolved) as a study user attribute, so any worker rebuilds the sampler (TPE, seeded
per trial slot: two workers never draw the same first trials) and the pruner (MedianPruner) from
the database alone. **Trial slots**: the study has ``trials`` slots, one RQ job each; a slot's job
asks Optuna for its trial once and records the slot in the trial (user attribute ``slot``), so a
retried job finds and continues the same trial: a slot never makes two trials.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from scalper_shared.schema.studies import (
    ParamSpec,
    SearchSpace,
    StudyRequest,
    StudyView,
    TrialView,
)

logger = logging.getLogger(__name__)

OPTUNA_SCHEMA = "optuna"
DEFAULT_SPACE_FILE = Path(__file__).with_name("default_space.yaml")
REQUEST_ATTR = "request"
BEST_MODEL_ATTR = "best_model_id"
REPORT_ATTR = "report"
SLOT_ATTR = "slot"
JOB_ATTR = "job_id"
STORAGE_LOCK_KEY = 0x5CA1_57D1
SLOT_LOCK_BASE = 0x5CA1_0000_0000

optuna.logging.set_verbosity(optuna.logging.WARNING)


class StudyExists(Exception):
    """A study of that name exists already."""


def load_space(path: Path) -> SearchSpace:
    """A search space from YAML or JSON (JSON is YAML); a ValueError naming the problem otherwise."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"cannot read search space {path}: {error}") from None
    return SearchSpace.model_validate(data)


def default_space() -> SearchSpace:
    return load_space(DEFAULT_SPACE_FILE)


def resolved(request: StudyRequest) -> StudyRequest:
    """``request`` with its search space explicit (the default one when it names none)."""
    return request if request.space is not None else request.model_copy(update={"space": default_space()})


def _storage_url(database_url: str) -> str:
    url = make_url(database_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def open_storage(database_url: str) -> RDBStorage:
    """Optuna's RDB storage on ``database_url``, schema ``optuna`` (tables created on first use)."""
    url = _storage_url(database_url)
    kwargs = {"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}, "pool_pre_ping": True}
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"),
                                       {"name": OPTUNA_SCHEMA}).first()
            if found is None:  # checked first: a failing RDBStorage would leave its engine's connections open
                raise RuntimeError(f"the database has no schema {OPTUNA_SCHEMA!r}: run the migrations first")
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STORAGE_LOCK_KEY})
            try:
                return RDBStorage(url, engine_kwargs=kwargs)
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STORAGE_LOCK_KEY})
    finally:
        engine.dispose()


def pruner_of(request: StudyRequest) -> optuna.pruners.BasePruner:
    if not request.pruner.enabled:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=request.pruner.n_startup_trials,
                                       n_warmup_steps=request.pruner.n_warmup_steps)


def create(storage: RDBStorage, request: StudyRequest) -> optuna.Study:
    """A new study for ``request`` (its space resolved and stored); StudyExists when the name is taken."""
    request = resolved(request)
    try:
        study = optuna.create_study(storage=storage, study_name=request.name, direction="maximize",
                                    pruner=pruner_of(request))
    except optuna.exceptions.DuplicatedStudyError:
        raise StudyExists(f"study {request.name!r} exists already") from None
    study.set_user_attr(REQUEST_ATTR, request.model_dump(mode="json"))
    logger.info("study %s created: %d trials of %d steps over %d folds", request.name, request.trials,
                request.timesteps, request.folds)
    return study


def request_of(study: optuna.Study) -> StudyRequest:
    return StudyRequest.model_validate(study.user_attrs[REQUEST_ATTR])


def load(storage: RDBStorage, name: str, *, slot: int | None = None) -> optuna.Study | None:
    """The study ``name`` with its pruner, and a TPE sampler seeded for ``slot``; None if unknown."""
    try:
        plain = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    request = request_of(plain)
    seed = None if slot is None else request.seed * 1_000 + slot
    return optuna.load_study(study_name=name, storage=storage, pruner=pruner_of(request),
                             sampler=optuna.samplers.TPESampler(seed=seed))


def names(storage: RDBStorage) -> list[str]:
    return [summary.study_name for summary in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def distribution(spec: ParamSpec) -> optuna.distributions.BaseDistribution:
    """Optuna's distribution of ``spec``; categorical choices travel as JSON text (Optuna keeps
    only scalars), :func:`decode` turns them back."""
    if spec.type == "categorical":
        return CategoricalDistribution([json.dumps(choice) for choice in spec.choices or ()])
    assert spec.low is not None and spec.high is not None
    if spec.type == "int":
        return IntDistribution(int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1))
    return FloatDistribution(spec.low, spec.high, log=spec.log, step=spec.step)


def decode(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's stored params -> TrainConfig values (categorical JSON text decoded)."""
    kinds = {spec.name: spec.type for spec in space.params}
    return {name: json.loads(value) if kinds.get(name) == "categorical" else value
            for name, value in params.items()}


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """The trial's value of every parameter (sampled now, or the stored one on a resumed trial)."""
    raw: dict[str, Any] = {}
    for spec in space.params:
        dist = distribution(spec)
        if isinstance(dist, CategoricalDistribution):
            raw[spec.name] = trial.suggest_categorical(spec.name, dist.choices)
        elif isinstance(dist, IntDistribution):
            raw[spec.name] = trial.suggest_int(spec.name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            assert isinstance(dist, FloatDistribution)
            raw[spec.name] = trial.suggest_float(spec.name, dist.low, dist.high, step=dist.step, log=dist.log)
    return decode(space, raw)


@contextmanager
def slot_lock(database_url: str, study_id: int, slot: int) -> Iterator[None]:
    """A PostgreSQL advisory lock on one trial slot (ask-or-find is then atomic across hosts)."""
    engine = create_engine(_storage_url(database_url))
    key = SLOT_LOCK_BASE + study_id * 10_000 + slot
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def trial_of_slot(study: optuna.Study, slot: int) -> FrozenTrial | None:
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(SLOT_ATTR) == slot:
            return trial
    return None


def trial_view(trial: FrozenTrial, space: SearchSpace | None = None) -> TrialView:
    attrs = {k: v for k, v in trial.user_attrs.items() if k not in (SLOT_ATTR, JOB_ATTR)}
    return TrialView(number=trial.number, slot=trial.user_attrs.get(SLOT_ATTR), state=trial.state.name,
                     value=trial.value if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
                     params=decode(space, trial.params) if space else dict(trial.params),
                     job_id=trial.user_attrs.get(JOB_ATTR), attrs=attrs,
                     intermediate={int(k): float(v) for k, v in trial.intermediate_values.items()},
                     started_at=trial.datetime_start, completed_at=trial.datetime_complete)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def study_view(study: optuna.Study, *, with_trials: bool = True) -> StudyView:
    request = request_of(study)
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for trial in trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    queued = request.trials - len(trials)
    if queued > 0:
        states["queued"] = queued
    ended = sum(1 for t in trials if t.state.is_finished())
    best = best_trial(study)
    return StudyView(name=study.study_name, request=request.model_dump(mode="json"), trials_requested=request.trials,
                     states=states, finished=ended >= request.trials,
                     best=trial_view(best, request.space) if best else None,
                     best_model_id=study.user_attrs.get(BEST_MODEL_ATTR), report=study.user_attrs.get(REPORT_ATTR),
                     trials=[trial_view(t, request.space) for t in trials] if with_trials else [])
