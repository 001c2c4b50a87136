"""The premium config travels with the model: TrainConfig -> environment -> manifest -> evaluation."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from scalper_cli.commands.eval import request_body
from scalper_shared.core.premium import PremiumModelConfig
from scalper_shared.core.rewards import RewardConfig
from scalper_shared.schema.evaluation import EvaluationRequest
from scalper_shared.schema.training import TrainConfig
from scalper_trainer.env.bundle import env_config_for
from scalper_trainer.evaluation.run import ModelArtifact

CUSTOM = PremiumModelConfig(calibration_multiplier=1.234, vol_floor=0.11)
WINDOW = {"train_from": date(2025, 7, 1), "train_to": date(2025, 7, 10), "validation_from": date(2025, 7, 11),
          "validation_to": date(2025, 7, 15)}


def test_a_train_config_carries_its_premium_model_into_the_environment_and_its_hash() -> None:
    config = TrainConfig(**WINDOW, premium=CUSTOM.model_dump(mode="json"))
    assert config.premium == CUSTOM
    assert env_config_for(config).premium == CUSTOM
    saved = json.loads(config.canonical_json())
    assert saved["premium"]["calibration_multiplier"] == 1.234
    assert TrainConfig.model_validate(saved) == config
    assert config.config_hash() != TrainConfig(**WINDOW).config_hash()


def test_evaluation_prices_with_the_models_saved_premium_unless_told_otherwise() -> None:
    manifest = {"config": TrainConfig(**WINDOW, premium=CUSTOM).model_dump(mode="json")}
    artifact = ModelArtifact("m", Path("."), network=None, manifest=manifest)  # type: ignore[arg-type]
    assert artifact.env_config().premium == CUSTOM
    assert isinstance(artifact.env_config().reward, RewardConfig)
    other = PremiumModelConfig(calibration_multiplier=0.9)
    assert artifact.env_config(other).premium == other
    legacy = ModelArtifact("old", Path("."), network=None, manifest={"config": {}})  # type: ignore[arg-type]
    assert legacy.env_config().premium == PremiumModelConfig()


def test_eval_request_takes_a_premium_config() -> None:
    body = request_body("m", date(2025, 7, 1), date(2025, 7, 2), None, 0, "database", False,
                        CUSTOM.model_dump(mode="json"))
    assert EvaluationRequest.model_validate(body).premium == CUSTOM
    assert EvaluationRequest.model_validate({**body, "premium": None}).premium is None
