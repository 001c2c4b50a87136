"""Serving the promoted model: load its exported numpy actor, hold it, swap it atomically. No torch.

An artifact directory (written by ``scalper_trainer.registry``) holds ``policy.npz`` (saved by
``NumpyPolicy.save``) and ``manifest.json`` with ``feature_spec_hash`` (``spec_hash`` is accepted too).
A model is refused, with a reason, when its feature-spec hash differs from the running feature
service's or its network does not take a 20 x 23 observation and give 6 actions.

:class:`ModelHolder` keeps the served model as one reference: a request reads it once and uses that
model for the whole request, so a swap never fails or mixes two models. :class:`PromotedModelSync`
polls the ``models`` table and swaps in the promoted model; a refused one leaves the old one serving.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import redis
from sqlalchemy import Engine

from scalper_shared.clock import Clock
from scalper_shared.core.actions import N_ACTIONS, Action
from scalper_shared.core.arrays import BoolArray, FloatArray
from scalper_shared.core.features import FEATURE_SPEC, FeatureSpec
from scalper_shared.core.policy_net import NumpyPolicy
from scalper_shared.core.risk import DEFAULT_RISK_CONFIG, RiskConfig, saved_risk_config
from scalper_shared.db.training import promoted_model
from scalper_shared.schema import streams

logger = logging.getLogger(__name__)

POLICY_FILE = "policy.npz"  # the names scalper_trainer.registry writes (not imported: it needs torch)
MANIFEST_FILE = "manifest.json"
FEATURE_SPEC_HASH_KEY = streams.FEATURE_SPEC_HASH_KEY
"""Redis key (after the stream prefix) where a feature service may record the spec hash it computes."""


class ModelRefused(Exception):
    """The model cannot be served; ``reason`` says why."""

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(f"model {model_id} refused: {reason}")
        self.model_id = model_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ServedModel:
    model_id: str
    spec_hash: str
    policy: NumpyPolicy
    artifact_dir: Path
    loaded_at: datetime
    risk: RiskConfig = DEFAULT_RISK_CONFIG
    """The risk-and-sizing config saved with the model: its decisions' masks use it."""


@dataclass(frozen=True, slots=True)
class Refusal:
    model_id: str
    reason: str
    expected_spec_hash: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    probabilities: FloatArray
    mask: BoolArray


def read_manifest(model_id: str, artifact_dir: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((artifact_dir / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ModelRefused(model_id, f"unreadable {MANIFEST_FILE} in {artifact_dir}: {exc}") from None
    if not isinstance(manifest, dict):
        raise ModelRefused(model_id, f"{MANIFEST_FILE} in {artifact_dir} is not a JSON object")
    return manifest


def manifest_spec_hash(model_id: str, manifest: dict[str, Any]) -> str:
    value = manifest.get("feature_spec_hash", manifest.get("spec_hash"))
    if not isinstance(value, str) or not value:
        raise ModelRefused(model_id, f"{MANIFEST_FILE} has no feature_spec_hash")
    return value


def load_served_model(model_id: str, artifact_dir: Path, *, expected_spec_hash: str, loaded_at: datetime,
                      spec: FeatureSpec = FEATURE_SPEC) -> ServedModel:
    """Load and check one model; raises :class:`ModelRefused` with the reason when it cannot serve."""
    manifest = read_manifest(model_id, artifact_dir)
    spec_hash = manifest_spec_hash(model_id, manifest)
    if spec_hash != expected_spec_hash:
        raise ModelRefused(model_id, f"feature-spec hash mismatch: the model was trained on features "
                                     f"{spec_hash[:16]} but the feature service computes {expected_spec_hash[:16]}")
    try:
        policy = NumpyPolicy.load(artifact_dir / POLICY_FILE)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelRefused(model_id, f"unreadable {POLICY_FILE} in {artifact_dir}: {exc}") from None
    expected_inputs = spec.window * spec.n_features
    if policy.input_size != expected_inputs or policy.n_actions != N_ACTIONS:
        raise ModelRefused(model_id, f"network takes {policy.input_size} inputs and gives {policy.n_actions} "
                                     f"actions; the service needs {expected_inputs} and {N_ACTIONS}")
    try:
        risk = saved_risk_config(manifest.get("config") if isinstance(manifest.get("config"), dict) else None)
    except ValueError as exc:
        raise ModelRefused(model_id, f"{MANIFEST_FILE} has an invalid risk config: {exc}") from None
    return ServedModel(model_id, spec_hash, policy, artifact_dir, loaded_at, risk)


def decide(model: ServedModel, observation: np.ndarray, mask: BoolArray, *, deterministic: bool = True,
           rng: np.random.Generator | None = None) -> Decision:
    """The masked action and probabilities of ``model`` for one observation."""
    action, probabilities = model.policy.act(observation, mask, deterministic=deterministic, rng=rng)
    return Decision(Action(action), probabilities, np.asarray(mask, dtype=bool))


class ModelHolder:
    """The served model as one atomically replaced reference, and the last refusal."""

    def __init__(self, model: ServedModel | None = None) -> None:
        self._model = model
        self._refusal: Refusal | None = None
        self._lock = threading.Lock()

    def current(self) -> ServedModel | None:
        return self._model

    @property
    def refusal(self) -> Refusal | None:
        return self._refusal

    def swap(self, model: ServedModel) -> ServedModel | None:
        """Serve ``model`` from now on; returns the one it replaced."""
        with self._lock:
            previous, self._model = self._model, model
            if self._refusal is not None and self._refusal.model_id == model.model_id:
                self._refusal = None
        return previous

    def refuse(self, refusal: Refusal) -> None:
        self._refusal = refusal


def feature_service_spec_hash(client: redis.Redis, prefix: str = "", spec: FeatureSpec = FEATURE_SPEC) -> str:
    """The spec hash the feature service recorded under ``features:spec_hash``, else this code's own."""
    recorded = client.get(prefix + FEATURE_SPEC_HASH_KEY)
    if recorded is None:
        return spec.spec_hash
    return recorded.decode() if isinstance(recorded, bytes) else str(recorded)


class PromotedModelSync:
    """Swaps the promoted model of the ``models`` table into ``holder`` (call ``refresh`` or ``run``)."""

    def __init__(self, holder: ModelHolder, engine: Engine, running_spec_hash: Callable[[], str],
                 clock: Clock) -> None:
        self.holder = holder
        self._engine = engine
        self._running_spec_hash = running_spec_hash
        self._clock = clock

    def refresh(self) -> ServedModel | None:
        """Serve the promoted model if it is new and acceptable; returns the model served afterwards."""
        row = promoted_model(self._engine)
        current = self.holder.current()
        if row is None or (current is not None and current.model_id == row.model_id):
            return current
        expected = self._running_spec_hash()
        refusal = self.holder.refusal
        if refusal is not None and refusal.model_id == row.model_id and refusal.expected_spec_hash == expected:
            return current  # already refused for the same reason; do not reload it every poll
        try:
            model = load_served_model(row.model_id, Path(row.artifact_path), expected_spec_hash=expected,
                                      loaded_at=self._clock.now())
        except ModelRefused as exc:
            self.holder.refuse(Refusal(row.model_id, exc.reason, expected, self._clock.now()))
            logger.error("promoted model %s refused, still serving %s: %s", row.model_id,
                         current.model_id if current else "nothing", exc.reason)
            return current
        previous = self.holder.swap(model)
        logger.info("now serving model %s (was %s)", model.model_id, previous.model_id if previous else "nothing")
        return model

    def run(self, stop_event: threading.Event, interval_s: float) -> None:
        """``refresh`` every ``interval_s`` until stopped; a failing database is logged and retried."""
        while not stop_event.is_set():
            try:
                self.refresh()
            except Exception as exc:  # the sync must outlive a database or Redis outage
                logger.warning("could not check the promoted model: %s", exc)
            stop_event.wait(interval_s)
