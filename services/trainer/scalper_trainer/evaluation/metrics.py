"""Metrics of one evaluation: pure functions of trades, fills and daily P&L (all after costs).

Every P&L here is net of the premium model's spread and commissions (the env's fills). "Per day"
means per trading day of the account (all symbols together); "per symbol-day" per episode.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from scalper_shared.core.actions import Action
from scalper_shared.core.arrays import FloatArray
from scalper_trainer.env import EnvConfig, Fill
from scalper_trainer.env.core import ENTRY, STOP_EXIT
from scalper_trainer.evaluation.engine import MOMENTUM_HORIZONS, EvaluationResult, Trade
from scalper_trainer.evaluation.significance import probabilistic_sharpe_ratio, sharpe_ratio

TRADES_PER_DAY_BAND = (10.0, 30.0)
TRADING_DAYS_PER_YEAR = 252
EXIT_REASON_ORDER = ("tp1", "tp2", "tp3", "stop", "agent", "end_of_day")


def daily_pnl(result: EvaluationResult) -> tuple[list[date], FloatArray]:
    """(days, P&L of each day summed over its symbols), days ascending."""
    totals: dict[date, float] = defaultdict(float)
    for day, pnl in zip(result.days, result.episode_pnl.tolist(), strict=True):
        totals[day] += pnl
    days = sorted(totals)
    return days, np.array([totals[d] for d in days])


def profit_factor(trade_pnls: npt.ArrayLike) -> float | None:
    """Gross profit / gross loss; None when there is no losing trade (undefined)."""
    x = np.asarray(trade_pnls, dtype=np.float64)
    loss = -x[x < 0].sum()
    return float(x[x > 0].sum() / loss) if loss > 0 else None


def max_drawdown(daily: npt.ArrayLike) -> float:
    """Largest peak-to-trough fall (dollars, >= 0) of the equity curve starting at 0."""
    equity = np.concatenate([[0.0], np.cumsum(np.asarray(daily, dtype=np.float64))])
    return float((np.maximum.accumulate(equity) - equity).max())


def drawdown_curve(daily: npt.ArrayLike) -> FloatArray:
    equity = np.cumsum(np.asarray(daily, dtype=np.float64))
    return np.maximum.accumulate(np.maximum(equity, 0.0)) - equity


def win_rate(trade_pnls: npt.ArrayLike) -> float | None:
    x = np.asarray(trade_pnls, dtype=np.float64)
    return float((x > 0).mean()) if x.size else None


def momentum_accuracy(sides: npt.ArrayLike, moves: npt.ArrayLike) -> dict[str, Any]:
    """Share of entries whose underlying move after the entry has the option's sign (call: up).

    NaN moves (horizon past the session) are left out; a zero move does not agree.
    """
    side = np.asarray(sides, dtype=np.float64)
    move = np.asarray(moves, dtype=np.float64)
    known = ~np.isnan(move)
    agree = int((side[known] * move[known] > 0).sum())
    n = int(known.sum())
    return {"entries": n, "agreeing": agree, "accuracy": agree / n if n else None}


def exits_by_reason(fills: Sequence[Fill]) -> dict[str, dict[str, float]]:
    """Exit fills by reason: number of fills, contracts and net P&L (tp1/tp2/tp3, stop, agent, end of day)."""
    out: dict[str, dict[str, float]] = {r: {"fills": 0, "contracts": 0, "pnl": 0.0} for r in EXIT_REASON_ORDER}
    for fill in fills:
        if fill.reason == ENTRY:
            continue
        row = out.setdefault(fill.reason, {"fills": 0, "contracts": 0, "pnl": 0.0})
        row["fills"] += 1
        row["contracts"] += fill.contracts
        row["pnl"] += fill.pnl
    return out


def kl_divergence(p: npt.ArrayLike, q: npt.ArrayLike, eps: float = 1e-12) -> float:
    """Mean over rows of KL(p || q) in nats (rows are distributions over the same actions)."""
    pa = np.atleast_2d(np.asarray(p, dtype=np.float64))
    qa = np.atleast_2d(np.asarray(q, dtype=np.float64))
    terms = np.where(pa > 0, pa * (np.log(np.maximum(pa, eps)) - np.log(np.maximum(qa, eps))), 0.0)
    return float(terms.sum(axis=1).mean())


def stop_loss_reliability(trades: Sequence[Trade], fills: Sequence[Fill], config: EnvConfig) -> dict[str, Any]:
    """Stops taken, and the worst realised losses against the -``stop_loss_pct`` line."""
    limit = -config.risk.stop_loss_pct
    returns = stop_fill_returns(fills)
    return {
        "stop_loss_limit": limit,
        "stops": len(returns),
        "stopped_trades": sum(1 for t in trades if t.exit_reason == STOP_EXIT),
        "worst_stop_fill_return": min(returns, default=None),
        "stop_fills_beyond_limit": int(sum(r < limit - 1e-9 for r in returns)),
        "worst_fill_return": min((t.worst_fill_return for t in trades), default=None),
        "worst_trade_return": min((t.premium_return for t in trades), default=None),
        "worst_trade_pnl": min((t.pnl for t in trades), default=None),
        "overshoot": stop_overshoot(trades, limit),
        "note": "a stop fills at the next bar's bid, so a fast move can fill below the stop line",
    }


def stop_overshoot(trades: Sequence[Trade], limit: float) -> dict[str, Any]:
    """How far past the stop line the stop fills went, and why.

    Per stop fill: ``overshoot = limit - fill return`` (0.05 = filled at -20% with a -15% line), split
    into ``at_trigger = max(0, limit - trigger return)`` (the triggering bar's bid was already past
    the line: a jump within one bar) and ``next_bar = trigger return - fill return`` (the move from the
    triggering bar to the fill bar; negative when the option recovered). ``why`` counts each stop by
    its larger part (``recovered`` when it filled at or above the line).
    """
    rows = [(t.entry_price, e.price, e.trigger_price) for t in trades for e in t.exits if e.reason == STOP_EXIT]
    if not rows:
        return {"stops": 0}
    entry, fill, trigger = (np.array(column, dtype=np.float64) for column in zip(*rows, strict=True))
    fill_return, trigger_return = fill / entry - 1.0, trigger / entry - 1.0
    overshoot = limit - fill_return
    at_trigger = np.maximum(0.0, limit - trigger_return)
    next_bar = trigger_return - fill_return
    why = np.where(overshoot <= 1e-9, "recovered", np.where(at_trigger >= next_bar, "jump_through_the_line",
                                                            "next_bar_gap"))
    beyond = overshoot > 1e-9

    def stats(values: FloatArray) -> dict[str, float]:
        return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
                "max": float(np.max(values))}

    return {"stops": len(rows), "beyond_line": int(beyond.sum()),
            "overshoot": stats(overshoot), "overshoot_beyond_line": stats(overshoot[beyond]) if beyond.any() else None,
            "mean_at_trigger": float(at_trigger.mean()), "mean_next_bar": float(next_bar.mean()),
            "why": {reason: int((why == reason).sum()) for reason in ("jump_through_the_line", "next_bar_gap",
                                                                      "recovered")}}


def stop_fill_returns(fills: Sequence[Fill]) -> list[float]:
    """Premium return of every stop fill against the entry of the position it closed."""
    entry_price: dict[int, float] = {}
    out = []
    for fill in fills:
        if fill.reason == ENTRY:
            entry_price[fill.episode] = fill.price
        elif fill.reason == STOP_EXIT:
            out.append(fill.price / entry_price[fill.episode] - 1.0)
    return out


def symbol_rotation(result: EvaluationResult, config: EnvConfig) -> dict[str, Any]:
    """Trades and P&L per symbol, and whether every re-entry waited out its cooldown."""
    per_symbol: dict[str, dict[str, Any]] = {}
    for symbol in sorted(set(result.symbols)):
        trades = [t for t in result.trades if t.symbol == symbol]
        days = sum(1 for s in result.symbols if s == symbol)
        pnls = [t.pnl for t in trades]
        per_symbol[symbol] = {"symbol_days": days, "trades": len(trades), "trades_per_day": len(trades) / days,
                              "pnl": float(sum(pnls)), "win_rate": win_rate(pnls),
                              "calls": sum(t.side > 0 for t in trades), "puts": sum(t.side < 0 for t in trades)}
    checked, violations = cooldown_compliance(result.trades, config)
    return {"per_symbol": per_symbol, "reentries_checked": checked, "cooldown_violations": violations,
            "cooldown_compliance": 1.0 if checked == 0 else 1.0 - violations / checked}


def cooldown_compliance(trades: Sequence[Trade], config: EnvConfig) -> tuple[int, int]:
    """(re-entries checked, re-entries sooner than the cooldown after the previous exit of that symbol-day)."""
    checked = violations = 0
    previous: Trade | None = None
    for trade in sorted(trades, key=lambda t: (t.day, t.symbol, t.entry_row)):
        if previous is not None and (previous.day, previous.symbol) == (trade.day, trade.symbol):
            wait = (config.risk.cooldown_after_stop_minutes if previous.exit_reason == STOP_EXIT
                    else config.risk.cooldown_after_exit_minutes)
            checked += 1
            violations += int(trade.entry_row - previous.exit_row < wait)
        previous = trade
    return checked, violations


def performance(daily: npt.ArrayLike, trade_pnls: npt.ArrayLike) -> dict[str, Any]:
    """P&L after costs, win rate, profit factor, max drawdown, daily Sharpe (and annualised), PSR."""
    days = np.asarray(daily, dtype=np.float64)
    sharpe = sharpe_ratio(days)
    return {
        "total_pnl": float(days.sum()), "mean_daily_pnl": float(days.mean()) if days.size else 0.0,
        "trades": int(np.asarray(trade_pnls).size), "win_rate": win_rate(trade_pnls),
        "profit_factor": profit_factor(trade_pnls), "max_drawdown": max_drawdown(days),
        "daily_sharpe": sharpe,
        "annualised_sharpe": None if sharpe is None else sharpe * float(np.sqrt(TRADING_DAYS_PER_YEAR)),
        "probabilistic_sharpe_ratio": probabilistic_sharpe_ratio(days),
        "winning_days": int((days > 0).sum()), "losing_days": int((days < 0).sum()),
    }


def trades_per_day(result: EvaluationResult) -> dict[str, Any]:
    days = sorted(set(result.days))
    per_day = np.array([sum(n for d, n in zip(result.days, result.episode_trades.tolist(), strict=True) if d == day)
                        for day in days], dtype=np.float64)
    mean = float(per_day.mean()) if per_day.size else 0.0
    low, high = TRADES_PER_DAY_BAND
    return {"mean_per_day": mean, "min_per_day": float(per_day.min()) if per_day.size else 0.0,
            "max_per_day": float(per_day.max()) if per_day.size else 0.0,
            "mean_per_symbol_day": float(result.episode_trades.mean()) if result.n_episodes else 0.0,
            "target_band": [low, high], "in_target_band": bool(low <= mean <= high)}


def action_shares(counts: npt.ArrayLike) -> dict[str, float]:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum() or 1.0
    return {action.name: float(c[action] / total) for action in Action}


def policy_metrics(result: EvaluationResult, config: EnvConfig) -> dict[str, Any]:
    """Every metric of one policy's run (JSON-ready)."""
    days, daily = daily_pnl(result)
    pnls = [t.pnl for t in result.trades]
    momentum = {f"{h}m": momentum_accuracy([t.side for t in result.trades], [t.underlying_moves[k] for t in result.trades])
                for k, h in enumerate(MOMENTUM_HORIZONS)}
    reasons = Counter(t.exit_reason for t in result.trades)
    return {
        "policy": result.policy, "symbol_days": result.n_episodes, "days": len(days),
        "performance": performance(daily, pnls), "trades_per_day": trades_per_day(result),
        "momentum_accuracy": momentum, "stop_loss": stop_loss_reliability(result.trades, result.fills, config),
        "exits_by_reason": {"fills": exits_by_reason(result.fills),
                            "trades_by_closing_reason": {r: reasons.get(r, 0) for r in sorted(reasons)}},
        "symbol_rotation": symbol_rotation(result, config), "action_shares": action_shares(result.action_counts),
        "mean_entropy": float(result.entropies.mean()) if result.entropies is not None and result.entropies.size else None,
        "daily_pnl": {"days": [d.isoformat() for d in days], "pnl": daily.tolist()},
        "evaluation_speed": {"steps": result.steps, "seconds": result.seconds,
                             "symbol_days_per_second": result.n_episodes / result.seconds if result.seconds > 0 else None},
    }
