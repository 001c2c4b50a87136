"""The study's search space, folds and request as data: the shipped default space is valid, every
parameter lands in the TrainConfig field it names, categorical lists survive Optuna, bad spaces and
windows are refused naming the problem, and a study's folds train on a block and validate on the next."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import optuna
import pytest
from pydantic import ValidationError

from scalper_shared import studies
from scalper_shared.core.folds import equal_block_folds
from scalper_shared.schema.studies import SearchSpace, StudyRequest, apply_params, trial_job_id

REQUEST = {"name": "s1", "trials": 6, "timesteps": 20_000, "start": "2025-08-11", "end": "2025-09-05", "folds": 2}


def test_the_shipped_default_space_covers_ppo_and_reward_with_log_scales() -> None:
    space = studies.default_space()
    names = {p.name for p in space.params}
    assert {"ppo.learning_rate", "ppo.n_steps", "ppo.batch_size", "ppo.n_epochs", "ppo.ent_coef",
            "ppo.net_arch"} <= names
    assert any(n.startswith("reward.") for n in names)
    assert {p.name for p in space.params if p.log} >= {"ppo.learning_rate", "ppo.ent_coef"}
    assert all(p.doc for p in space.params)


def test_every_sampled_trial_of_the_default_space_is_a_valid_train_config() -> None:
    space = studies.default_space()
    request = StudyRequest.model_validate({**REQUEST, "space": space.model_dump(mode="json")})
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        trial = study.ask()
        values = studies.suggest(trial, space)
        configs = request.fold_configs(values)
        assert configs[0].ppo.learning_rate == values["ppo.learning_rate"]
        assert configs[0].ppo.net_arch == tuple(values["ppo.net_arch"])  # a JSON list back from Optuna's text
        assert configs[0].reward.hold_tax == values["reward.hold_tax"]
        assert 1e-5 <= values["ppo.learning_rate"] <= 1e-3
        study.tell(trial, 0.0)


def test_a_resumed_trial_gets_its_stored_parameters_back() -> None:
    space = studies.default_space()
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    first = studies.suggest(trial, space)
    again = studies.suggest(optuna.Trial(study, trial._trial_id), space)
    assert again == first


def test_parameters_land_in_the_field_they_name() -> None:
    base = StudyRequest.model_validate(REQUEST).base_config()
    changed = apply_params(base, {"ppo.ent_coef": 0.05, "reward.stop_loss_penalty": -0.1, "n_envs": 8})
    assert changed.ppo.ent_coef == 0.05 and changed.reward.stop_loss_penalty == -0.1 and changed.n_envs == 8
    assert changed.ppo.learning_rate == base.ppo.learning_rate  # the rest is the preset's
    with pytest.raises(ValidationError, match="exceeds the rollout"):
        apply_params(base, {"ppo.batch_size": 100_000})


@pytest.mark.parametrize(("param", "message"), [
    ({"name": "ppo.nope", "type": "float", "low": 0, "high": 1}, "unknown parameter 'ppo.nope'"),
    ({"name": "reward.hold_tax", "type": "float", "low": 1, "high": 0}, "must be below"),
    ({"name": "ppo.learning_rate", "type": "float", "low": 0, "high": 1, "log": True}, "log scale needs low > 0"),
    ({"name": "ppo.n_epochs", "type": "int", "low": 1.5, "high": 4}, "whole numbers"),
    ({"name": "ppo.net_arch", "type": "categorical", "low": 1, "high": 2}, "takes choices"),
])
def test_bad_parameters_are_refused_naming_the_problem(param: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SearchSpace.model_validate({"params": [param]})


def test_a_space_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "space.yaml"
    bad.write_text("params: [unclosed")
    with pytest.raises(ValueError, match="cannot read search space"):
        studies.load_space(bad)


def test_folds_train_on_a_block_and_validate_on_the_next() -> None:
    folds = equal_block_folds(date(2025, 8, 11), date(2025, 9, 5), 2)  # 19 trading days: blocks of 6
    assert [(f.train_from, f.train_to, f.test_from, f.test_to) for f in folds] == [
        (date(2025, 8, 11), date(2025, 8, 18), date(2025, 8, 19), date(2025, 8, 26)),
        (date(2025, 8, 19), date(2025, 8, 26), date(2025, 8, 27), date(2025, 9, 4))]
    configs = StudyRequest.model_validate(REQUEST).fold_configs({})
    assert [(c.train_from, c.validation_to) for c in configs] == [(f.train_from, f.test_to) for f in folds]
    with pytest.raises(ValidationError, match="too few for 2 folds"):
        StudyRequest.model_validate({**REQUEST, "start": "2025-08-11", "end": "2025-08-12"})


def test_trial_job_ids_are_deterministic_per_stack() -> None:
    assert trial_job_id("s1", 0) == trial_job_id("s1", 0) != trial_job_id("s1", 1)
    assert trial_job_id("s1", 0, "a:") != trial_job_id("s1", 0, "b:")
