"""The evaluation report: ``metrics.json`` (every metric), ``report.html`` and its PNG plots.

The header states the outcome plainly: what the agent made or lost, the best baseline, and
whether the bootstrap interval of the daily difference excludes zero. Plots use matplotlib's Agg
backend (no display needed).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalper_shared.core.actions import Action  # noqa: E402
from scalper_trainer.env import EnvConfig  # noqa: E402
from scalper_trainer.evaluation.engine import EvaluationResult  # noqa: E402
from scalper_trainer.evaluation.metrics import EXIT_REASON_ORDER, daily_pnl, drawdown_curve, policy_metrics  # noqa: E402
from scalper_trainer.evaluation.significance import bootstrap_mean_difference_ci  # noqa: E402

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
PLOTS = {"equity": "equity.png", "drawdown": "drawdown.png", "checkpoint_actions": "checkpoint_actions.png",
         "exits_by_reason": "exits_by_reason.png", "pnl_histogram": "pnl_histogram.png"}
SECTIONS = ("summary", "model", "window", "performance", "trades_per_day", "momentum_accuracy", "stop_loss",
            "exits_by_reason", "symbol_rotation", "action_stability", "baselines", "significance", "daily_pnl",
            "evaluation_speed", "plots")
"""Top-level keys of ``metrics.json``; the HTML has a section for each."""


@dataclass(frozen=True)
class ReportPaths:
    directory: Path
    html: Path
    metrics: Path
    plots: dict[str, Path]


def build_metrics(agent: EvaluationResult, baselines: Sequence[EvaluationResult], config: EnvConfig, *,
                  model: dict[str, Any], window: dict[str, Any], stability: dict[str, Any], seed: int) -> dict[str, Any]:
    """The whole ``metrics.json`` document (without the ``plots`` section, added on writing)."""
    mine = policy_metrics(agent, config)
    others = {b.policy: policy_metrics(b, config) for b in baselines}
    significance = compare(agent, baselines, seed)
    return {
        "summary": verdict(mine, significance),
        "model": model, "window": {**window, "symbol_days": agent.n_episodes, "days": mine["days"],
                                   "skipped_symbol_days": [[s, d.isoformat()] for s, d in agent.skipped]},
        "performance": mine["performance"], "trades_per_day": mine["trades_per_day"],
        "momentum_accuracy": mine["momentum_accuracy"], "stop_loss": mine["stop_loss"],
        "exits_by_reason": mine["exits_by_reason"], "symbol_rotation": mine["symbol_rotation"],
        "action_stability": {"action_shares": mine["action_shares"], "mean_entropy": mine["mean_entropy"],
                             **stability},
        "baselines": others, "significance": significance, "daily_pnl": mine["daily_pnl"],
        "evaluation_speed": mine["evaluation_speed"],
    }


def compare(agent: EvaluationResult, baselines: Sequence[EvaluationResult], seed: int) -> dict[str, Any]:
    """Bootstrap CI of the mean daily P&L difference against the best baseline (by total P&L)."""
    days, mine = daily_pnl(agent)
    scored = []
    for baseline in baselines:
        their_days, theirs = daily_pnl(baseline)
        if their_days != days:
            raise ValueError(f"baseline {baseline.policy} ran on other days than the agent")
        scored.append((float(theirs.sum()), baseline.policy, theirs))
    if not scored or not days:
        return {"best_baseline": None}
    total, name, best = max(scored, key=lambda s: s[0])
    interval = bootstrap_mean_difference_ci(mine, best, seed=seed)
    return {"best_baseline": name, "best_baseline_total_pnl": total,
            "mean_daily_difference": interval.estimate, "ci_low": interval.low, "ci_high": interval.high,
            "confidence": interval.confidence, "ci_includes_zero": interval.includes_zero, "days": len(days),
            "method": "paired bootstrap over days, 10,000 resamples, percentile interval"}


def verdict(mine: dict[str, Any], significance: dict[str, Any]) -> str:
    """One honest sentence (or three) about the outcome."""
    perf = mine["performance"]
    total, days = perf["total_pnl"], mine["days"]
    outcome = "LOST" if total < 0 else "MADE"
    text = f"The agent {outcome} ${abs(total):,.2f} over {days} days ({mine['symbol_days']} symbol-days, " \
           f"{perf['trades']} trades, after costs)."
    best = significance.get("best_baseline")
    if best is None:
        return text + " No baseline to compare with."
    text += f" Best baseline: {best} (${significance['best_baseline_total_pnl']:,.2f})."
    low, high = significance["ci_low"], significance["ci_high"]
    ci = f"mean daily difference ${significance['mean_daily_difference']:,.2f}, 95% CI [{low:,.2f}, {high:,.2f}]"
    if significance["ci_includes_zero"]:
        return text + f" {ci} includes 0 -> no evidence of skill."
    if low > 0:
        return text + f" {ci} is above 0 -> the agent beat the best baseline on these days."
    return text + f" {ci} is below 0 -> the agent did WORSE than the best baseline."


def write_report(metrics: dict[str, Any], agent: EvaluationResult, baselines: Sequence[EvaluationResult],
                 out_dir: Path) -> ReportPaths:
    """Write the plots, ``metrics.json`` and ``report.html`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = {key: out_dir / name for key, name in PLOTS.items()}
    _plot_equity(agent, baselines, plots["equity"])
    _plot_drawdown(agent, plots["drawdown"])
    _plot_checkpoint_actions(metrics["action_stability"], plots["checkpoint_actions"])
    _plot_exits(metrics["exits_by_reason"]["fills"], plots["exits_by_reason"])
    _plot_pnl_histogram(agent, plots["pnl_histogram"])
    document = {**metrics, "plots": {key: path.name for key, path in plots.items()}}
    metrics_path = out_dir / METRICS_FILE
    metrics_path.write_text(json.dumps(_json_safe(document), indent=2, sort_keys=False))
    html_path = out_dir / REPORT_FILE
    html_path.write_text(render_html(document))
    return ReportPaths(out_dir, html_path, metrics_path, plots)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# -- plots ---------------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_equity(agent: EvaluationResult, baselines: Sequence[EvaluationResult], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    for result, style in [(agent, "-")] + [(b, "--") for b in baselines]:
        days, daily = daily_pnl(result)
        ax.plot(np.array(days, dtype="datetime64[D]"), np.cumsum(daily), style, marker=".", label=result.policy)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set(title="Equity after costs: agent vs baselines", ylabel="cumulative P&L ($)")
    ax.legend()
    fig.autofmt_xdate()
    _save(fig, path)


def _plot_drawdown(agent: EvaluationResult, path: Path) -> None:
    days, daily = daily_pnl(agent)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.fill_between(np.array(days, dtype="datetime64[D]"), -drawdown_curve(daily), 0, color="tab:red", alpha=0.4, step="post")
    ax.set(title="Agent drawdown", ylabel="$ below the running peak")
    fig.autofmt_xdate()
    _save(fig, path)


def _plot_checkpoint_actions(stability: dict[str, Any], path: Path) -> None:
    rows = stability.get("checkpoints") or []
    labels = [r["label"] for r in rows] or ["evaluated model"]
    shares = [r["mean_probabilities"] for r in rows] or [stability["action_shares"]]
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = np.zeros(len(labels))
    for action in Action:
        values = np.array([s[action.name] for s in shares])
        ax.bar(labels, values, bottom=bottom, label=action.name)
        bottom += values
    title = "Mean action probabilities per checkpoint (same states)" if rows else \
        "Action shares (no training checkpoints found)"
    ax.set(title=title, ylabel="share", ylim=(0, 1))
    ax.legend(fontsize="small", ncol=3)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    _save(fig, path)


def _plot_exits(fills: dict[str, dict[str, float]], path: Path) -> None:
    reasons = [r for r in EXIT_REASON_ORDER if r in fills] + [r for r in fills if r not in EXIT_REASON_ORDER]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(reasons, [fills[r]["fills"] for r in reasons], color="tab:blue")
    ax.set(title="Agent exit fills by reason", ylabel="fills")
    _save(fig, path)


def _plot_pnl_histogram(agent: EvaluationResult, path: Path) -> None:
    pnls = [t.pnl for t in agent.trades]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if pnls:
        ax.hist(pnls, bins=min(40, max(5, len(pnls) // 3)), color="tab:purple")
        ax.axvline(0, color="black", linewidth=0.8)
    else:
        ax.text(0.5, 0.5, "the agent made no trades", ha="center", va="center", transform=ax.transAxes)
    ax.set(title="Agent trade P&L after costs", xlabel="$ per trade", ylabel="trades")
    _save(fig, path)


# -- HTML ----------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pairs(section: dict[str, Any]) -> str:
    return _table(["metric", "value"], [(k, v) for k, v in section.items() if not isinstance(v, dict | list)])


def _img(doc: dict[str, Any], key: str, alt: str) -> str:
    return f'<img src="{html.escape(doc["plots"][key])}" alt="{html.escape(alt)}">'


def render_html(doc: dict[str, Any]) -> str:
    perf_keys = ["total_pnl", "mean_daily_pnl", "trades", "win_rate", "profit_factor", "max_drawdown",
                 "daily_sharpe", "annualised_sharpe", "probabilistic_sharpe_ratio"]
    comparison = [["agent", *[doc["performance"][k] for k in perf_keys]]] + [
        [name, *[b["performance"][k] for k in perf_keys]] for name, b in doc["baselines"].items()]
    symbols = doc["symbol_rotation"]["per_symbol"]
    symbol_rows = [[s, r["symbol_days"], r["trades"], r["trades_per_day"], r["pnl"], r["win_rate"], r["calls"], r["puts"]]
                   for s, r in symbols.items()]
    exits = doc["exits_by_reason"]["fills"]
    momentum = doc["momentum_accuracy"]
    checkpoints = doc["action_stability"].get("checkpoints", [])
    stability_rows = [[c["label"], c["mean_entropy"], c["kl_to_previous"], c["kl_to_final"],
                       *[c["argmax_shares"][a.name] for a in Action]] for c in checkpoints]
    rotation = {k: v for k, v in doc["symbol_rotation"].items() if k != "per_symbol"}
    window = doc["window"]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Evaluation of {_fmt(doc["model"].get("id"))}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:auto}} table{{border-collapse:collapse;margin:8px 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} .verdict{{font-size:1.15em;padding:10px;
background:#f3f3f3;border-left:6px solid #555}} img{{max-width:100%}}</style></head><body>
<h1>Evaluation of model {_fmt(doc["model"].get("id"))}</h1>
<p class="verdict" id="summary">{html.escape(doc["summary"])}</p>
<p id="window">Window {_fmt(window.get("from"))} .. {_fmt(window.get("to"))}, symbols {_fmt(", ".join(window.get("symbols", [])))},
{window["days"]} days, {window["symbol_days"]} symbol-days, seed {_fmt(window.get("seed"))}, source {_fmt(window.get("source"))}.</p>
<h2 id="performance">P&amp;L after costs: agent and baselines</h2>
{_table(["policy", *perf_keys], comparison)}
{_img(doc, "equity", "equity curves")}
{_img(doc, "drawdown", "drawdown")}
<h2 id="significance">Significance</h2>{_pairs(doc["significance"])}
<h2 id="trades_per_day">Trades per day</h2>{_pairs(doc["trades_per_day"])}
<h2 id="momentum_accuracy">Momentum accuracy</h2>
{_table(["horizon", "entries", "agreeing", "accuracy"], [[h, m["entries"], m["agreeing"], m["accuracy"]] for h, m in momentum.items()])}
<h2 id="stop_loss">Stop-loss reliability</h2>{_pairs(doc["stop_loss"])}
<h2 id="exits_by_reason">Exits by reason</h2>
{_table(["reason", "fills", "contracts", "pnl"], [[r, e["fills"], e["contracts"], e["pnl"]] for r, e in exits.items()])}
{_img(doc, "exits_by_reason", "exits by reason")}
<h2 id="symbol_rotation">Symbol rotation</h2>
{_table(["symbol", "symbol-days", "trades", "trades/day", "pnl", "win rate", "calls", "puts"], symbol_rows)}
{_pairs(rotation)}
<h2 id="action_stability">Action-probability stability</h2>
{_table(["action share (played)", "value"], list(doc["action_stability"]["action_shares"].items()))}
<p>Mean entropy of the evaluated policy: {_fmt(doc["action_stability"]["mean_entropy"])} nats;
states compared across checkpoints: {doc["action_stability"].get("states", 0)}.</p>
{_table(["checkpoint", "entropy", "KL to previous", "KL to final", *[a.name for a in Action]], stability_rows)}
{_img(doc, "checkpoint_actions", "action distribution across checkpoints")}
<h2 id="pnl_histogram">Trade P&amp;L distribution</h2>{_img(doc, "pnl_histogram", "trade P&L histogram")}
<h2 id="baselines">Baselines</h2><p>hold: never trades; random: uniform over allowed actions (seeded);
momentum_rule: enters on the shared strong-setup rule, exits through the risk rules only.</p>
<h2 id="evaluation_speed">Evaluation speed</h2>{_pairs(doc["evaluation_speed"])}
</body></html>
"""
