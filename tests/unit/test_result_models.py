"""The typed result models the CLI reads API answers through (shared/scalper_shared/schema): they agree
with what the trainer produces, keep every other section, and drive what the commands print."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

from scalper_cli.commands import eval as eval_command
from scalper_cli.commands import study as study_command
from scalper_shared.schema.evaluation import EvaluationMetrics, EvaluationView, FillSummary
from scalper_shared.schema.studies import StudyView
from scalper_trainer.env import EnvConfig, MarketTape, synthetic_episodes
from scalper_trainer.evaluation.engine import evaluate
from scalper_trainer.evaluation.policies import HoldPolicy, MomentumRulePolicy, RandomMaskedPolicy
from scalper_trainer.evaluation.report import build_metrics


@pytest.fixture(scope="module")
def metrics_document() -> dict[str, Any]:
    """The trainer's own metrics.json document for a rule policy against two baselines, two days."""
    config = EnvConfig()
    tape = MarketTape(synthetic_episodes(date(2025, 7, 7), date(2025, 7, 8), seed=3, symbols=("SPY",)), config)
    agent = evaluate(MomentumRulePolicy(), tape, config)
    baselines = [evaluate(HoldPolicy(), tape, config), evaluate(RandomMaskedPolicy(), tape, config, seed=1)]
    document = build_metrics(agent, baselines, config, model={"id": "m"}, window={"from": "2025-07-07"},
                             stability={}, seed=0)
    return document | {"fills": {"mode": "model"}}


def recording(monkeypatch: pytest.MonkeyPatch, module: Any) -> Console:
    console = Console(record=True, width=1000)
    monkeypatch.setattr(module, "console", console)
    return console


def test_the_trainers_metrics_document_fits_the_typed_model_and_keeps_every_section(
        metrics_document: dict[str, Any]) -> None:
    metrics = EvaluationMetrics.model_validate(metrics_document)
    assert metrics.performance.total_pnl == pytest.approx(metrics_document["performance"]["total_pnl"])
    assert metrics.significance.best_baseline in {"hold", "random"}
    assert set(metrics.significance.vs) == {"hold", "random"}
    dumped = metrics.model_dump(mode="json")
    assert set(dumped) == set(metrics_document), "untyped sections (trades, price_days, ...) must survive"
    assert dumped["trades"] == metrics_document["trades"]


def test_a_metrics_document_without_a_typed_section_is_refused(metrics_document: dict[str, Any]) -> None:
    broken = {k: v for k, v in metrics_document.items() if k != "performance"}
    with pytest.raises(ValidationError, match="performance"):
        EvaluationMetrics.model_validate(broken)
    with pytest.raises(ValidationError, match="total_pnl"):
        EvaluationMetrics.model_validate(metrics_document | {"performance": {"trades": 3}})


def test_real_fill_counts_are_read_per_policy() -> None:
    summary = FillSummary.model_validate({"mode": "real", "option_bars": 40, "agent": {
        "fills": 10, "real": 7, "model": 3, "real_share": 0.7}})
    counts = summary.of("agent")
    assert counts is not None and (counts.real, counts.fills) == (7, 10)
    assert summary.of("hold") is None and FillSummary(mode="model").of("agent") is None


def test_eval_prints_the_real_fill_line_from_the_typed_metrics(
        monkeypatch: pytest.MonkeyPatch, metrics_document: dict[str, Any]) -> None:
    console = recording(monkeypatch, eval_command)
    fills = {"mode": "real", "option_bars": 40, "agent": {"fills": 10, "real": 7, "model": 3, "real_share": 0.7}}
    view = EvaluationView.model_validate({
        "id": "e1", "model_id": "m", "status": "finished", "request": {}, "progress": 1.0, "stage": "done",
        "metrics": metrics_document | {"fills": fills}, "created_at": datetime.now(UTC),
        "updated_at": datetime.now(UTC)})
    assert view.metrics is not None
    eval_command.show(view.metrics)
    text = console.export_text()
    assert metrics_document["summary"] in text
    assert "fills: 7 of 10 of the agent's from real option bars (40 bars stored)" in text
    assert f"trades/day {metrics_document['trades_per_day']['mean_per_day']:.1f}" in text


def test_study_best_prints_the_best_trial_its_interval_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    console = recording(monkeypatch, study_command)
    view = StudyView.model_validate({
        "name": "s", "request": {}, "trials_requested": 2, "states": {"COMPLETE": 2}, "finished": True,
        "best_model_id": "model-abc",
        "best": {"number": 1, "state": "COMPLETE", "value": 12.5, "params": {"learning_rate": 0.001},
                 "attrs": {"walk_forward": {"ci_low": -3.0, "ci_high": 20.0, "days": 10},
                           "baselines": {"hold": {"mean_daily_difference": 12.5, "ci_low": -3.0, "ci_high": 20.0}}}},
        "trials": [{"number": 0, "state": "COMPLETE", "value": 1.0}, {"number": 1, "state": "COMPLETE", "value": 12.5}]})
    study_command.render_status(view)
    text = console.export_text()
    assert "best trial 1: $12.50 per account-day" in text and "model model-abc" in text
    assert "10 validation days" in text and "vs hold: $12.50 per day" in text
    assert "2 COMPLETE of 2; ended" in text


def test_an_api_answer_that_is_not_a_json_object_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    import httpx
    import typer

    from scalper_cli.api_client import checked

    request = httpx.Request("GET", "http://127.0.0.1:8000/v1/evaluations/e1")
    assert checked(httpx.Response(200, json={"id": "e1"}, request=request)) == {"id": "e1"}
    with pytest.raises(typer.Exit):
        checked(httpx.Response(200, json=["e1"], request=request))
    error = " ".join(capsys.readouterr().err.split())  # rich wraps at the terminal width
    assert "error: expected a JSON object from http://127.0.0.1:8000/v1/evaluations/e1, got list" in error
