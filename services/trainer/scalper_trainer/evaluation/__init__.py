"""Offline evaluation: a model over a date window, against baselines, with an honest report.

Public API::

    result = evaluate(policy, episodes, env_config, seed=0)             # one policy, every symbol-day once
    outcome = run_evaluation("model-...", start, end, artifacts_dir=..., out_dir=..., database_url=...)
    outcome.paths.html, outcome.paths.metrics, outcome.metrics["summary"]

Policies: :class:`AgentPolicy` (an exported actor) and the baselines :class:`HoldPolicy`,
:class:`RandomMaskedPolicy`, :class:`MomentumRulePolicy`. Walk-forward: :func:`walk_forward_folds`,
:func:`evaluate_walk_forward`. See docs/evaluation.md.
"""

from scalper_trainer.evaluation.engine import EvaluationResult, Trade, evaluate
from scalper_trainer.evaluation.policies import (
    AgentPolicy,
    HoldPolicy,
    MomentumRulePolicy,
    Policy,
    RandomMaskedPolicy,
    baseline_policies,
)
from scalper_trainer.evaluation.report import METRICS_FILE, PLOTS, REPORT_FILE, SECTIONS, ReportPaths
from scalper_trainer.evaluation.run import EvaluationOutcome, ModelArtifact, load_artifact, run_evaluation
from scalper_trainer.evaluation.walkforward import Fold, evaluate_walk_forward, walk_forward_folds

__all__ = [
    "METRICS_FILE", "PLOTS", "REPORT_FILE", "SECTIONS", "AgentPolicy", "EvaluationOutcome", "EvaluationResult",
    "Fold", "HoldPolicy", "ModelArtifact", "MomentumRulePolicy", "Policy", "RandomMaskedPolicy", "ReportPaths",
    "Trade", "baseline_policies", "evaluate", "evaluate_walk_forward", "load_artifact", "run_evaluation",
    "walk_forward_folds",
]
