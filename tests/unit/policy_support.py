"""Shared by the policy service tests: model artifacts, keys and apps (no torch)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import redis
from sqlalchemy import create_engine

from scalper_policy.inference import ServedModel, load_served_model
from scalper_policy.settings import PolicySettings
from scalper_shared.clock import FakeClock
from scalper_shared.core.actions import N_ACTIONS
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.core.policy_net import NumpyPolicy
from scalper_shared.runtime.api_security import ApiKeyRecord, Scope, hash_key
from scalper_shared.runtime.bootstrap import Connections

KEYS = {scope: f"{scope.value}-secret" for scope in Scope}
RECORDS = [ApiKeyRecord(name=f"{scope.value}-key", sha256=hash_key(KEYS[scope]), scopes=frozenset({scope}))
           for scope in Scope]
NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # 10:00 ET, a regular session
OBS_SHAPE = (FEATURE_SPEC.window, FEATURE_SPEC.n_features)


def headers(scope: Scope) -> dict[str, str]:
    return {"X-API-Key": KEYS[scope]}


def random_policy(seed: int, hidden: tuple[int, ...] = (64, 64)) -> NumpyPolicy:
    rng = np.random.default_rng(seed)
    sizes = (OBS_SHAPE[0] * OBS_SHAPE[1], *hidden)
    layers = tuple((rng.normal(0, 0.2, (a, b)), rng.normal(0, 0.1, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return NumpyPolicy(hidden=layers, head=(rng.normal(0, 0.5, (sizes[-1], N_ACTIONS)), rng.normal(0, 0.1, N_ACTIONS)))


def write_artifact(root: Path, model_id: str, *, seed: int = 0, spec_hash: str = FEATURE_SPEC.spec_hash) -> Path:
    """An artifact directory as the trainer writes it: ``policy.npz`` and ``manifest.json``."""
    directory = root / "models" / model_id
    directory.mkdir(parents=True)
    random_policy(seed).save(directory / "policy.npz")
    (directory / "manifest.json").write_text(json.dumps({"model_id": model_id, "feature_spec_hash": spec_hash}))
    return directory


def served(root: Path, model_id: str, seed: int = 0) -> ServedModel:
    return load_served_model(model_id, write_artifact(root, model_id, seed=seed),
                             expected_spec_hash=FEATURE_SPEC.spec_hash, loaded_at=NOW)


def settings(**overrides: object) -> PolicySettings:
    values: dict[str, object] = {"api_keys": RECORDS, "api_rate_limit": "100000/1s", "decisions_enabled": False,
                                 "api_auth_failure_limit": "100000/1s"}  # the tests fail auth on purpose
    return PolicySettings(**{**values, **overrides})  # type: ignore[arg-type]


def lazy_connections(redis_url: str = "redis://127.0.0.1:6379/15",
                     database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres") -> Connections:
    """Clients that connect on first use only (unit tests never reach them)."""
    return Connections(redis=redis.Redis.from_url(redis_url), engine=create_engine(database_url))


def fake_clock() -> FakeClock:
    return FakeClock(NOW)


def observation(seed: int = 1, side: int = 0, pnl: float = 0.0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    obs = rng.normal(0, 1, OBS_SHAPE)
    obs[:, FEATURE_SPEC.n_market] = side
    obs[:, FEATURE_SPEC.n_market + 1] = pnl
    return obs.tolist()
