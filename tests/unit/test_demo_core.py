"""The pure parts of ``scalper demo``: its key, the services' environment, the plan, the summary."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from scalper_cli import demo
from scalper_shared.runtime.api_security import ApiKeyRecord, Scope, hash_key
from scalper_shared.schema.evaluation import EvaluationMetrics, EvaluationRequest
from scalper_shared.schema.training import TrainConfig
from scalper_trainer.evaluation.paper import PaperResult, PaperTrade


def test_each_run_gets_a_new_admin_key_and_only_its_hash_goes_to_the_services() -> None:
    key, record = demo.new_api_key()
    other, _ = demo.new_api_key()
    env = demo.service_environment(record)
    assert key != other and record.sha256 == hash_key(key) and record.allows(Scope.TRAIN)
    (entry,) = [ApiKeyRecord.model_validate(e) for e in json.loads(env["API_KEYS"])]
    assert entry == record
    assert key not in json.dumps(env)


def test_the_stack_runs_with_default_settings_the_paper_day_needs_none() -> None:
    env = demo.service_environment(demo.new_api_key()[1])
    assert set(env) == {"API_KEYS", "INGESTION_LIVE", "FEATURES_SYMBOLS"}
    assert env["FEATURES_SYMBOLS"] == ",".join(demo.TRADED_SYMBOLS)


def test_the_plan_makes_valid_requests_with_held_out_windows_in_order() -> None:
    plan = demo.DemoPlan(timesteps=12_345)
    config = TrainConfig.model_validate(plan.train_config())
    request = EvaluationRequest.model_validate(plan.evaluation_request("model-abc"))
    assert config.data_source == "database" and config.total_timesteps == 12_345
    assert config.train_to < config.validation_from <= config.validation_to < request.start <= request.end
    assert request.end < plan.paper_day


def _metrics(total: float, best: float, low: float, high: float) -> EvaluationMetrics:
    performance = {"total_pnl": total, "mean_daily_pnl": total / 5, "trades": 16, "win_rate": 0.4,
                   "profit_factor": 0.7, "max_drawdown": 900.0, "daily_sharpe": None, "annualised_sharpe": None,
                   "probabilistic_sharpe_ratio": None, "winning_days": 2, "losing_days": 3}
    trades = {"mean_per_day": 3.2, "min_per_day": 1, "max_per_day": 5, "mean_per_symbol_day": 1.6,
              "target_band": (2, 8), "in_target_band": True}
    return EvaluationMetrics.model_validate({
        "summary": f"The agent {'LOST' if total < 0 else 'MADE'} ${abs(total):,.2f} over 5 days.",
        "performance": performance, "window": {"days": 5, "symbol_days": 10},
        "significance": {"best_baseline": "momentum_rule", "best_baseline_total_pnl": best,
                         "mean_daily_difference": (total - best) / 5, "ci_low": low, "ci_high": high,
                         "ci_includes_zero": low <= 0 <= high},
        "trades_per_day": trades, "action_stability": {"action_shares": {"HOLD": 0.91}, "mean_entropy": 1.2}})


def test_a_losing_agent_and_differing_paper_trades_are_said_plainly() -> None:
    trade = PaperTrade("SPY", 1, 10, 20, "agent", 1.5, (1.4,), 10, -112.5)
    paper = PaperResult("model-x", date(2025, 8, 18), 390, 780, 12.0, [trade], [], latencies_ms=[3.0, 5.0, 40.0])
    facts = demo.DemoFacts(report=Path("/var/reports/model-x/report.html"),
                           metrics=_metrics(-812.4, 120.0, -300.0, -20.0), paper=paper)

    lines = demo.outcome_lines(facts, "http://127.0.0.1:8000/docs")

    text = "\n".join(lines)
    assert "report: /var/reports/model-x/report.html" in lines
    assert "verdict: The agent LOST $812.40" in text
    assert "agent P&L: $-812.40 over 5 held-out days; best baseline momentum_rule: $120.00" in lines
    assert "95% CI [-300.00, -20.00]" in text and "includes 0" not in text
    assert "trades/day: 3.2; HOLD: 91.0% of actions" in lines
    assert "1 trades, P&L $-112.50" in text and "p50 5.0 ms" in text
    assert "paper trades DIFFER from the backtest (1 differences)" in text
    assert lines[-1] == ("API docs: http://127.0.0.1:8000/docs once the stack is up (scalper stack up, "
                         "or scalper demo --keep-up)")  # the demo stopped the stack before printing
    kept_up = demo.outcome_lines(facts, "http://127.0.0.1:8000/docs", stack_up=True)
    assert kept_up[-1] == "API docs: http://127.0.0.1:8000/docs (ReDoc: http://127.0.0.1:8000/redoc)"


def test_the_summary_of_a_demo_that_stopped_early_has_only_the_docs_address() -> None:
    (line,) = demo.outcome_lines(demo.DemoFacts(), "http://127.0.0.1:8000/docs")
    assert line.startswith("API docs: http://127.0.0.1:8000/docs once the stack is up")


def test_a_paper_day_without_trades_says_its_parity_is_trivial() -> None:
    paper = PaperResult("model-x", date(2025, 8, 18), 390, 780, 12.0, [], [])
    (line,) = [x for x in demo.outcome_lines(demo.DemoFacts(paper=paper), "d") if x.startswith("paper day")]
    assert "0 trades" in line and "no orders, no latency" in line and "parity holds trivially" in line


def test_the_summary_reports_the_last_checkpoints_decision_step_probabilities() -> None:
    from scalper_shared.schema.training import Diagnostics, PPOStats

    blank = {name: None for name, field in Diagnostics.model_fields.items() if not field.is_required()}
    counts = {"validation_steps": 100, "decision_steps": 60, "setup_steps": 5, "position_steps": 10, "symbol_days": 2,
              "account_days": 1, "trades_per_symbol_day": 1.0, "trades_per_account_day": 2.0,
              "pnl_per_symbol_day": -10.0, "pnl_per_account_day": -20.0, "reward_terms": {}, "seed_criteria": {}}
    last = Diagnostics.model_validate({
        **blank, **counts, "step": 50_000, "ppo": PPOStats(updates=12, gradient_steps=1_920),
        "hold_share": 0.4, "buy_share": 0.6, "setup_buy_rate": 0.9, "nonsetup_buy_rate": 0.55,
        "buy_call_share": None, "buy_put_share": None, "sampled_hold_share": None, "sampled_buy_share": None,
        "argmax_hold_share": None, "argmax_buy_share": None, "entropy": None, "setup_direction_buy_rate": None,
        "selectivity": None, "trim_50_share": None, "trim_70_share": None, "exit_share": None,
        "mean_holding_minutes": None, "collapse_warning": False, "not_learning_warning": False,
        "train_reward_terms": {}})
    lines = demo.outcome_lines(demo.DemoFacts(diagnostics=[last]), "http://127.0.0.1:8000/docs")
    assert ("decision steps at step 50,000: P(HOLD) 40.0%, P(BUY) 60.0%; P(BUY) on strong setups 90.0% vs "
            "elsewhere 55.0% (a uniform policy shows 33% / 67%; only the setup gap shows learning)") in lines
