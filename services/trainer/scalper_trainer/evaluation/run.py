"""``run_evaluation``: a registered model (or an artifact directory) over a date window, reported.

Loads the exported actor (``policy.npz``) and its manifest, builds the window's episodes from the
``bars`` table (or the synthetic market) with the shared feature code, runs the agent and the
three baselines on the same symbol-days, compares the training checkpoints on the agent's states,
and writes ``report.html``, ``metrics.json`` and the plots.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from scalper_shared.core.policy_net import NumpyPolicy
from scalper_shared.core.premium import PremiumModelConfig
from scalper_shared.core.rewards import RewardConfig
from scalper_shared.core.risk import saved_risk_config
from scalper_shared.db.training import load_diagnostics
from scalper_shared.schema.evaluation import EvaluationMetrics
from scalper_shared.schema.training import Diagnostics
from scalper_trainer.env import EnvConfig, EpisodeSet, MarketTape, load_episodes, synthetic_episodes
from scalper_trainer.evaluation.engine import EvaluationResult, evaluate
from scalper_trainer.evaluation.policies import AgentPolicy, baseline_policies
from scalper_trainer.evaluation.real_fills import FILL_MODES, load_option_closes, reprice_fills
from scalper_trainer.evaluation.report import ReportPaths, build_metrics, write_report
from scalper_trainer.evaluation.stability import checkpoint_networks, checkpoint_stability
from scalper_trainer.registry import MANIFEST_FILE, POLICY_FILE

logger = logging.getLogger(__name__)

StageCallback = Callable[[float, str], None]
"""Called with (fraction done, stage name) as the evaluation moves on."""
DEFAULT_SYMBOLS = ("SPY", "QQQ")


@dataclass(frozen=True)
class ModelArtifact:
    model_id: str
    directory: Path
    network: NumpyPolicy
    manifest: dict[str, Any]

    @property
    def job_id(self) -> str | None:
        return self.manifest.get("job_id")

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.manifest.get("config", {}).get("symbols") or DEFAULT_SYMBOLS)

    def env_config(self, premium: PremiumModelConfig | None = None) -> EnvConfig:
        """The environment the model was trained in: its reward config (P&L does not depend on it), its
        risk-and-sizing config and its premium model (P&L does), unless ``premium`` overrides the latter."""
        saved = self.manifest.get("config", {})
        reward = RewardConfig.model_validate(saved["reward"]) if saved.get("reward") else RewardConfig()
        if premium is None:
            premium = PremiumModelConfig.model_validate(saved["premium"]) if saved.get("premium") else PremiumModelConfig()
        return EnvConfig(reward=reward, premium=premium, risk=saved_risk_config(saved))


@dataclass(frozen=True)
class EvaluationOutcome:
    paths: ReportPaths
    metrics: dict[str, Any]
    agent: EvaluationResult
    baselines: tuple[EvaluationResult, ...]


def load_artifact(model: str | Path, artifacts_dir: Path) -> ModelArtifact:
    """A model id (``artifacts_dir/models/<id>``) or an artifact directory with ``policy.npz``."""
    directory = Path(model)
    if not (directory / POLICY_FILE).is_file():
        directory = artifacts_dir / "models" / str(model)
    if not (directory / POLICY_FILE).is_file():
        raise FileNotFoundError(f"no model artifact {model!r}: {directory / POLICY_FILE} does not exist")
    manifest_path = directory / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return ModelArtifact(str(manifest.get("model_id", directory.name)), directory,
                         NumpyPolicy.load(directory / POLICY_FILE), manifest)


def window_episodes(start: date, end: date, symbols: Sequence[str], *, data_source: str = "database",
                    database_url: str | None = None, data_seed: int = 0, data_edge: str = "none") -> EpisodeSet:
    if data_source == "synthetic":
        return synthetic_episodes(start, end, seed=data_seed, symbols=symbols, edge=data_edge)
    if database_url is None:
        raise ValueError("the database source needs a database_url")
    return load_episodes(database_url, list(symbols), start, end)


def job_diagnostics(database_url: str | None, job_id: str | None) -> list[Diagnostics]:
    """The checkpoint diagnostics the training job stored (none without a database or a job)."""
    if not database_url or not job_id:
        return []
    engine = create_engine(database_url)
    try:
        return load_diagnostics(engine, job_id)
    finally:
        engine.dispose()


def run_evaluation(model: str | Path | ModelArtifact, start: date, end: date, *, artifacts_dir: Path,
                   out_dir: Path, database_url: str | None = None, symbols: Sequence[str] | None = None,
                   seed: int = 0, data_source: str = "database", data_seed: int = 0, data_edge: str = "none",
                   checkpoints: bool = True, progress: StageCallback | None = None,
                   premium: PremiumModelConfig | None = None, fills: str = "model") -> EvaluationOutcome:
    """Evaluate ``model`` on ``start..end`` against the baselines and write the report into ``out_dir``.

    Prices use the premium model saved with the model, or ``premium`` when given; ``fills="real"``
    reprices every fill that has a stored real option bar (:mod:`.real_fills`)."""
    if fills not in FILL_MODES:
        raise ValueError(f"fills must be one of {FILL_MODES}, got {fills!r}")
    if fills == "real" and (data_source != "database" or database_url is None):
        raise ValueError("real fills come from the option_bars table: they need the database source")
    report = progress or (lambda _fraction, _stage: None)
    artifact = model if isinstance(model, ModelArtifact) else load_artifact(model, artifacts_dir)
    chosen = tuple(symbols or artifact.symbols)
    report(0.02, "loading episodes")
    if data_source != "synthetic" and data_edge != "none":
        raise ValueError(f"a planted edge ({data_edge}) exists only in the synthetic market, not in {data_source}")
    episodes = window_episodes(start, end, chosen, data_source=data_source, database_url=database_url,
                               data_seed=data_seed, data_edge=data_edge)
    expected_hash = artifact.manifest.get("feature_spec_hash")
    if expected_hash and expected_hash != episodes.spec_hash:
        raise ValueError(f"model {artifact.model_id} was trained on feature spec {expected_hash}, "
                         f"the episodes are {episodes.spec_hash}")
    config = artifact.env_config(premium)
    tape = MarketTape(episodes, config)
    report(0.1, "agent")
    agent = evaluate(AgentPolicy(artifact.network), tape, config, seed=seed, keep_states=True)
    baselines = []
    for k, policy in enumerate(baseline_policies(data_edge)):
        report(0.3 + 0.15 * k, f"baseline {policy.name}")
        baselines.append(evaluate(policy, tape, config, seed=seed))
    fill_summary: dict[str, Any] = {"mode": "model"}
    if fills == "real":
        assert database_url is not None
        closes = load_option_closes(database_url, chosen, start, end)
        agent, agent_fills = reprice_fills(agent, tape, config, closes)
        repriced = [reprice_fills(b, tape, config, closes) for b in baselines]
        baselines = [b for b, _ in repriced]
        fill_summary = {"mode": "real", "option_bars": len(closes), agent.policy: agent_fills,
                        **{b.policy: s for b, s in repriced}}
    report(0.75, "checkpoints")
    networks = checkpoint_networks(artifacts_dir, artifact.job_id) if checkpoints and artifact.job_id else []
    stability = checkpoint_stability(networks, agent.states)
    report(0.85, "report")
    window = {"from": start.isoformat(), "to": end.isoformat(), "symbols": list(chosen), "seed": seed,
              "source": data_source, **({"data_seed": data_seed, "edge": data_edge} if data_source == "synthetic" else {})}
    model_info = {"id": artifact.model_id, "job_id": artifact.job_id, "artifact": str(artifact.directory),
                  "train_window": artifact.manifest.get("data_window")}
    diagnostics = job_diagnostics(database_url, artifact.job_id)
    metrics = build_metrics(agent, baselines, config, model=model_info, window=window, stability=stability, seed=seed,
                            diagnostics=diagnostics)
    metrics["fills"] = fill_summary
    EvaluationMetrics.model_validate(metrics)  # the typed sections programs read (the CLI, the demo) hold
    paths = write_report(metrics, agent, baselines, out_dir)
    logger.info("model %s evaluated on %s..%s: %s", artifact.model_id, start, end, metrics["summary"])
    report(1.0, "done")
    return EvaluationOutcome(paths, json.loads(paths.metrics.read_text()), agent, tuple(baselines))
