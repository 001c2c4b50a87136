"""The evaluation report: ``metrics.json`` (every metric), ``report.html`` and its PNG plots.

The header states the outcome plainly: what the agent made or lost, the best baseline, and
whether the bootstrap interval of the daily difference excludes zero; then the contract size, the
risk limits and the premium-model config the evaluation ran under. The body has the agent next to
each baseline (with the interval of the daily difference against each), the cost breakdown (gross
at mid, spread paid, commission, net; per day and in total), the best and the worst day's underlying
with the entries and exits marked, and the trade list. ``report.html`` is rendered from the Jinja2
template ``templates/report.html.j2`` and embeds its images as data URIs, so the one file renders
anywhere (downloaded over REST, mailed, opened offline); the PNGs are written beside it too. Plots
use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import jinja2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalper_shared.core.actions import Action  # noqa: E402
from scalper_shared.schema.training import Diagnostics  # noqa: E402
from scalper_trainer.env import EnvConfig  # noqa: E402
from scalper_trainer.evaluation.engine import EvaluationResult, Trade  # noqa: E402
from scalper_trainer.evaluation.metrics import EXIT_REASON_ORDER, daily_pnl, drawdown_curve, policy_metrics  # noqa: E402
from scalper_trainer.evaluation.significance import bootstrap_mean_difference_ci  # noqa: E402

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
TEMPLATE = "report.html.j2"
PLOTS = {"equity": "equity.png", "drawdown": "drawdown.png", "checkpoint_actions": "checkpoint_actions.png",
         "exits_by_reason": "exits_by_reason.png", "pnl_histogram": "pnl_histogram.png",
         "best_day": "best_day.png", "worst_day": "worst_day.png"}
SECTIONS = ("summary", "model", "window", "config", "performance", "costs", "trades", "price_days",
            "trades_per_day", "momentum_accuracy", "stop_loss", "exits_by_reason", "symbol_rotation",
            "action_stability", "checkpoint_diagnostics", "baselines", "significance", "daily_pnl",
            "evaluation_speed", "plots")
"""Top-level keys of ``metrics.json``; the HTML has a section for each."""
SESSION_OPEN_MINUTE = 9 * 60 + 30
"""09:30 ET in minutes after midnight: trade times are the open plus the bar's minute of the session."""


@dataclass(frozen=True)
class ReportPaths:
    directory: Path
    html: Path
    metrics: Path
    plots: dict[str, Path]


def build_metrics(agent: EvaluationResult, baselines: Sequence[EvaluationResult], config: EnvConfig, *,
                  model: dict[str, Any], window: dict[str, Any], stability: dict[str, Any], seed: int,
                  diagnostics: Sequence[Diagnostics] = ()) -> dict[str, Any]:
    """The whole ``metrics.json`` document (without the ``plots`` section, added on writing).

    ``diagnostics``: the training job's checkpoint diagnostics (the report's table has a column for
    every field of :class:`Diagnostics`)."""
    mine = policy_metrics(agent, config)
    others = {b.policy: policy_metrics(b, config) for b in baselines}
    significance = compare(agent, baselines, seed)
    return {
        "summary": verdict(mine, significance),
        "model": model, "window": {**window, "symbol_days": agent.n_episodes, "days": mine["days"],
                                   "skipped_symbol_days": [[s, d.isoformat()] for s, d in agent.skipped]},
        "config": run_config(config),
        "performance": mine["performance"], "costs": cost_breakdown(agent), "trades": trade_rows(agent.trades),
        "price_days": price_days(agent),
        "trades_per_day": mine["trades_per_day"],
        "momentum_accuracy": mine["momentum_accuracy"], "stop_loss": mine["stop_loss"],
        "exits_by_reason": mine["exits_by_reason"], "symbol_rotation": mine["symbol_rotation"],
        "action_stability": {"action_shares": mine["action_shares"], "mean_entropy": mine["mean_entropy"],
                             **stability},
        "checkpoint_diagnostics": {"fields": list(Diagnostics.model_fields),
                                   "checkpoints": [d.model_dump(mode="json") for d in spread(diagnostics)]},
        "baselines": others, "significance": significance, "daily_pnl": mine["daily_pnl"],
        "evaluation_speed": mine["evaluation_speed"],
    }


MAX_DIAGNOSTIC_CHECKPOINTS = 8
"""Columns of the checkpoint-diagnostics table (evenly spread, the last always in): it fits 1,280 px."""


def spread(items: Sequence[Diagnostics], n: int = MAX_DIAGNOSTIC_CHECKPOINTS) -> list[Diagnostics]:
    if len(items) <= n:
        return list(items)
    picks = sorted({round(k * (len(items) - 1) / (n - 1)) for k in range(n)})
    return [items[k] for k in picks]


def run_config(config: EnvConfig) -> dict[str, Any]:
    """What every trade was sized and judged by: contracts per entry, risk limits, premium model."""
    return {"contracts_per_entry": config.contracts, "risk": config.risk.model_dump(mode="json"),
            "premium": config.premium.model_dump(mode="json")}


def compare(agent: EvaluationResult, baselines: Sequence[EvaluationResult], seed: int) -> dict[str, Any]:
    """Bootstrap CI of the mean daily P&L difference against each baseline (``vs``), and the best
    baseline (by total P&L) in the top-level keys."""
    days, mine = daily_pnl(agent)
    scored = []
    for baseline in baselines:
        their_days, theirs = daily_pnl(baseline)
        if their_days != days:
            raise ValueError(f"baseline {baseline.policy} ran on other days than the agent")
        scored.append((float(theirs.sum()), baseline.policy, theirs))
    if not scored or not days:
        return {"best_baseline": None, "vs": {}}
    vs = {}
    for total, name, theirs in scored:
        interval = bootstrap_mean_difference_ci(mine, theirs, seed=seed)
        vs[name] = {"baseline_total_pnl": total, "mean_daily_difference": interval.estimate, "ci_low": interval.low,
                    "ci_high": interval.high, "confidence": interval.confidence,
                    "ci_includes_zero": interval.includes_zero}
    total, name, _ = max(scored, key=lambda s: s[0])
    best = vs[name]
    return {"best_baseline": name, "best_baseline_total_pnl": total,
            "mean_daily_difference": best["mean_daily_difference"], "ci_low": best["ci_low"],
            "ci_high": best["ci_high"], "confidence": best["confidence"], "ci_includes_zero": best["ci_includes_zero"],
            "days": len(days), "method": "paired bootstrap over days, 10,000 resamples, percentile interval",
            "vs": vs}


def cost_breakdown(result: EvaluationResult) -> dict[str, Any]:
    """Gross P&L (at the premium model's mids), spread paid, commission and net, per day and in total.

    ``net == gross - spread_paid - commission``; net per day equals the day's P&L after costs."""
    per_day: dict[date, dict[str, float]] = defaultdict(lambda: {"trades": 0, "gross": 0.0, "spread_paid": 0.0,
                                                                  "commission": 0.0, "net": 0.0})
    for day in result.days:
        per_day[day]  # noqa: B018 - every evaluated day gets a row, trades or not
    for trade in result.trades:
        row = per_day[trade.day]
        row["trades"] += 1
        row["gross"] += trade.gross
        row["spread_paid"] += trade.spread_paid
        row["commission"] += trade.fees
        row["net"] += trade.pnl
    days = [{"day": d.isoformat(), **per_day[d]} for d in sorted(per_day)]
    total = {key: sum(row[key] for row in per_day.values())
             for key in ("trades", "gross", "spread_paid", "commission", "net")}
    return {"per_day": days, "total": total,
            "note": "gross at the premium model's mid prices; spread paid = ask over mid on entry plus mid over "
                    "bid on every exit (a stop's next-bar fill included); commission on every fill"}


def clock(minute: float) -> str:
    """Minutes after the 09:30 ET open as HH:MM ET."""
    total = SESSION_OPEN_MINUTE + int(round(minute))
    return f"{total // 60:02d}:{total % 60:02d}"


def trade_rows(trades: Sequence[Trade]) -> list[dict[str, Any]]:
    """The trade list: times, contract, sizes, prices, costs and outcome of every trade."""
    return [{"day": t.day.isoformat(), "symbol": t.symbol, "side": "call" if t.side > 0 else "put",
             "strike": t.strike, "contracts": t.contracts, "entry_time": clock(t.entry_minute),
             "exit_time": clock(t.exit_minute), "entry_ask": t.entry_price,
             "exits": [{"time": clock(e.minute), "contracts": e.contracts,
                        "bid": e.price, "reason": e.reason} for e in t.exits],
             "gross": t.gross, "spread_paid": t.spread_paid, "fees": t.fees, "pnl": t.pnl,
             "exit_reason": t.exit_reason} for t in trades]


def price_days(result: EvaluationResult) -> dict[str, Any]:
    """The best and the worst day (by the account's P&L after costs) shown with their trades."""
    days, daily = daily_pnl(result)
    if not days:
        return {"best": None, "worst": None}
    best, worst = int(np.argmax(daily)), int(np.argmin(daily))
    return {"best": {"day": days[best].isoformat(), "pnl": float(daily[best])},
            "worst": {"day": days[worst].isoformat(), "pnl": float(daily[worst])}}


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
    """Write the plots, ``metrics.json`` and ``report.html`` (plots embedded) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = {key: out_dir / name for key, name in PLOTS.items()}
    _plot_equity(agent, baselines, plots["equity"])
    _plot_drawdown(agent, plots["drawdown"])
    _plot_checkpoint_actions(metrics["action_stability"], plots["checkpoint_actions"])
    _plot_exits(metrics["exits_by_reason"]["fills"], plots["exits_by_reason"])
    _plot_pnl_histogram(agent, plots["pnl_histogram"])
    for which in ("best", "worst"):
        _plot_day(agent, metrics["price_days"][which], which, plots[f"{which}_day"])
    document = {**metrics, "plots": {key: path.name for key, path in plots.items()}}
    metrics_path = out_dir / METRICS_FILE
    metrics_path.write_text(json.dumps(_json_safe(document), indent=2, sort_keys=False))
    images = {key: "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
              for key, path in plots.items()}
    html_path = out_dir / REPORT_FILE
    html_path.write_text(render_html(_json_safe(document), images), encoding="utf-8")
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


def _plot_day(agent: EvaluationResult, which: dict[str, Any] | None, label: str, path: Path) -> None:
    """The underlying of every symbol on one day, with the agent's entries and exits marked."""
    day = date.fromisoformat(which["day"]) if which else None
    symbols = sorted({s for s, d in agent.sessions if d == day}) or ["-"]
    fig, axes = plt.subplots(len(symbols), 1, figsize=(10, 2.6 * len(symbols) + 0.6), squeeze=False, sharex=True)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        session = agent.sessions.get((symbol, day)) if day else None
        if session is None:
            ax.text(0.5, 0.5, "no evaluated day", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.plot(session.minute, session.close, color="black", linewidth=0.9, label=symbol)
        trades = [t for t in agent.trades if t.symbol == symbol and t.day == day]
        for side, color, marker, name in ((1, "tab:green", "^", "call entry"), (-1, "tab:red", "v", "put entry")):
            entries = [t for t in trades if t.side == side]
            if entries:
                ax.scatter([session.minute[t.entry_row] for t in entries], [session.close[t.entry_row] for t in entries],
                           color=color, marker=marker, s=60, zorder=3, label=name)
        exits = [e for t in trades for e in t.exits]
        if exits:
            ax.scatter([session.minute[e.row] for e in exits], [session.close[e.row] for e in exits],
                       color="tab:blue", marker="x", s=45, zorder=3, label="exit")
        pnl = sum(t.pnl for t in trades)
        ax.set_title(f"{symbol} {day}: {len(trades)} trades, {_money(pnl)} after costs", fontsize=10)
        ax.set_ylabel("price")
        ax.legend(fontsize="small", loc="best")
        ticks = np.arange(0, 391, 30)
        ax.set_xticks(ticks, [clock(t) for t in ticks.tolist()])
    title = f"{label.capitalize()} day {which['day']}: {_money(which['pnl'])}" if which else f"{label} day: none"
    fig.suptitle(title + " (entries: calls ^, puts v; exits x; times ET)")
    _save(fig, path)


# -- HTML ----------------------------------------------------------------------------------------

_ENVIRONMENT = jinja2.Environment(loader=jinja2.PackageLoader("scalper_trainer.evaluation", "templates"),
                                  autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
                                  trim_blocks=True, lstrip_blocks=True)


def _number(value: Any, digits: int | None = None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if digits is None:
        digits = 4 if abs(value) < 10 else 2
    return f"{value:,.{digits}f}"


def _money(value: Any) -> str:
    if value is None:
        return "-"
    return f"-${abs(value):,.2f}" if value < 0 else f"${value:,.2f}"


def _percent(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


_ENVIRONMENT.filters.update(number=_number, money=_money, percent=_percent)


def render_html(doc: dict[str, Any], images: dict[str, str]) -> str:
    """``report.html`` from the template; ``images`` maps plot keys to (data) URIs."""
    return _ENVIRONMENT.get_template(TEMPLATE).render(doc=doc, images=images, actions=[a.name for a in Action],
                                                      exit_order=EXIT_REASON_ORDER)
