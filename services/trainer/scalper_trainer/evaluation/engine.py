"""The evaluation engine: a policy over every symbol-day of an episode set, exactly once.

It runs the training environment's own batched core (:class:`TradingBatch` over a
:class:`MarketTape`), so masks, premiums, fills, the stop, the take-profit tiers and the flatten
window are the exact rules the agent was trained and will be traded under. Each usable episode
starts at the features' warm-up row (no random offset) and runs to its flatten bar; episodes with
the same number of decisions step together in one batch. All symbols of a day play together in one
account (``TradingBatch.account``), under the account-wide rules execution enforces: trades per day,
the daily loss limit, concurrent positions, portfolio contracts and contracts per entry. The engine records every fill
(``TradingBatch.fills``) and turns them into :class:`Trade` records; a run is deterministic for a
given ``seed``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from scalper_shared.core.actions import N_ACTIONS
from scalper_shared.core.arrays import FloatArray
from scalper_shared.core.premium import PremiumModelConfig, atm_strike, commission, premium_cash, quote_at_vol
from scalper_trainer.env import DEFAULT_ENV_CONFIG, EnvConfig, EpisodeSet, Fill, MarketTape, TradingBatch
from scalper_trainer.env.core import ENTRY, STOP_EXIT
from scalper_trainer.evaluation.policies import Policy

logger = logging.getLogger(__name__)

MOMENTUM_HORIZONS = (5, 15)
"""Minutes after an entry at which the underlying's move is compared with the option side."""
STATE_STRIDE = 10
MAX_STATES = 4_000

ProgressCallback = Callable[[int, int], None]
"""Called with (symbol-days done, symbol-days in all) as batches finish."""


@dataclass(frozen=True, slots=True)
class ExitFill:
    """One sale of (part of) a position: session row, contracts, the bid it sold at, why, and when
    (minutes after the 09:30 ET open at the fill bar's close)."""

    row: int
    contracts: int
    price: float
    reason: str
    minute: float
    trigger_price: float | None = None
    """Stops only: the bid on the bar that triggered the stop (the fill is the next bar's bid)."""


@dataclass(frozen=True, slots=True)
class Trade:
    """One position from entry to flat. Rows are minutes of the session (0 = its first bar).

    Costs: ``gross`` is the P&L at the premium model's mid prices; ``spread_paid`` what buying at the
    ask and selling at the bids cost against those mids; ``fees`` the commissions of every fill; so
    ``pnl == gross - spread_paid - fees`` (up to float rounding).
    """

    symbol: str
    day: date
    side: int
    """+1 call, -1 put."""
    entry_row: int
    exit_row: int
    entry_price: float
    contracts: int
    pnl: float
    exit_reason: str
    """The reason of the fill that closed it: agent, stop, tp1/tp2/..., end_of_day."""
    worst_fill_return: float
    """The lowest premium return of any of its exit fills (-0.15 = sold 15% below the entry)."""
    underlying_moves: tuple[float, ...]
    """The underlying's close-to-close change over each of ``MOMENTUM_HORIZONS`` after the entry
    (NaN when the horizon runs past the session)."""
    strike: float = float("nan")
    entry_minute: float = float("nan")
    """Minutes after the 09:30 ET open at the entry bar's close (the decision time)."""
    exit_minute: float = float("nan")
    exits: tuple[ExitFill, ...] = ()
    gross: float = float("nan")
    spread_paid: float = float("nan")
    fees: float = float("nan")

    @property
    def premium_return(self) -> float:
        """Net P&L over the premium paid."""
        return self.pnl / (self.entry_price * self.contracts * 100.0)


@dataclass(frozen=True, slots=True)
class SessionPrices:
    """One symbol-day's closes; ``minute[k]`` is minutes after 09:30 ET at the close of session row k."""

    minute: FloatArray
    close: FloatArray


@dataclass
class EvaluationResult:
    """What one policy did on one set of symbol-days."""

    policy: str
    symbols: tuple[str, ...]
    days: tuple[date, ...]
    episode_pnl: FloatArray
    episode_trades: npt.NDArray[np.int64]
    trades: list[Trade]
    fills: list[Fill]
    action_counts: npt.NDArray[np.int64]
    entropies: FloatArray | None
    """Per-step entropy of the policy's masked distribution (None: the policy has no probabilities)."""
    states: tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]] | None
    """A sample of the states seen (observations, masks), for comparing checkpoints on them."""
    steps: int
    seconds: float
    skipped: list[tuple[str, date]] = field(default_factory=list)
    """Symbol-days too short to trade (fewer decisions than the env's ``min_steps``)."""
    reward_terms: dict[str, float] = field(default_factory=dict)
    """Each reward term's (and ``total``'s) mean per step over the whole run."""
    sessions: dict[tuple[str, date], SessionPrices] = field(default_factory=dict)
    """The underlying's bars of every evaluated symbol-day (for price charts with the trades)."""
    episode_reward_terms: FloatArray | None = None
    """(symbol-days, len(REWARD_TERMS)): each reward term summed over each symbol-day, in the order
    of ``symbols``/``days`` (the env config's reward)."""

    @property
    def n_episodes(self) -> int:
        return len(self.symbols)


def evaluate(policy: Policy, episodes: EpisodeSet | MarketTape, env_config: EnvConfig = DEFAULT_ENV_CONFIG, *,
             seed: int = 0, keep_states: bool = False, progress: ProgressCallback | None = None) -> EvaluationResult:
    """Play ``policy`` on every usable symbol-day of ``episodes`` once; deterministic for ``seed``.

    Every minute of every day is played to its close, as the risk layer does: the training-only
    shortcuts (``EnvConfig.end_when_no_decision_left``, ``skip_minutes_without_decision``) are off.
    BLAS runs single-threaded here: the actor's matrices are small, and threaded BLAS on a busy
    machine made each forward pass ~100x slower than one thread.
    """
    env_config = env_config.model_copy(update={"end_when_no_decision_left": False,
                                               "skip_minutes_without_decision": False})
    with threadpool_limits(limits=1, user_api="blas"):
        return _evaluate(policy, episodes, env_config, seed, keep_states, progress)


def _evaluate(policy: Policy, episodes: EpisodeSet | MarketTape, env_config: EnvConfig, seed: int,
              keep_states: bool, progress: ProgressCallback | None) -> EvaluationResult:
    started = time.monotonic()
    tape = episodes if isinstance(episodes, MarketTape) else MarketTape(episodes, env_config)
    rng = np.random.default_rng(seed)
    usable = tape.usable
    lengths = tape.end_row[usable] - tape.start_row[usable]
    run = _Run(tape, len(usable), keep_states)
    done = 0
    for n_steps in np.unique(lengths).tolist():
        group = usable[lengths == n_steps]
        _play_group(policy, tape, env_config, group, int(n_steps), rng, run)
        done += len(group)
        if progress is not None:
            progress(done, len(usable))
    result = run.result(policy.name, tape, usable, time.monotonic() - started, env_config.premium,
                        env_config.risk.stop_loss_pct)
    logger.info("evaluated %s on %d symbol-days (%d steps, %d trades) in %.2fs", policy.name,
                result.n_episodes, result.steps, len(result.trades), result.seconds)
    return result


class _Run:
    """Accumulates what the batches of one evaluation produce."""

    def __init__(self, tape: MarketTape, n_usable: int, keep_states: bool) -> None:
        self.fills: list[Fill] = []
        self.pnl: dict[int, float] = {}
        self.terms: dict[int, FloatArray] = {}
        self.action_counts = np.zeros(N_ACTIONS, np.int64)
        self.entropies: list[FloatArray] = []
        self.keep_states = keep_states
        self.observations: list[npt.NDArray[np.float32]] = []
        self.masks: list[npt.NDArray[np.bool_]] = []
        self.steps = 0
        self.state_budget = MAX_STATES
        self.term_sums: dict[str, float] = {}

    def add_terms(self, terms: dict[str, FloatArray]) -> None:
        for name, values in terms.items():
            self.term_sums[name] = self.term_sums.get(name, 0.0) + float(np.sum(values))

    def keep(self, observations: npt.NDArray[np.float32], masks: npt.NDArray[np.bool_], step: int) -> None:
        if not self.keep_states or step % STATE_STRIDE or self.state_budget <= 0:
            return
        take = min(len(masks), self.state_budget)
        self.observations.append(observations[:take].copy())
        self.masks.append(masks[:take].copy())
        self.state_budget -= take

    def result(self, name: str, tape: MarketTape, usable: npt.NDArray[np.int64], seconds: float,
               premium: PremiumModelConfig, stop_loss_pct: float) -> EvaluationResult:
        episodes = tape.episodes
        order = sorted(usable.tolist(), key=lambda e: (episodes.days[e], episodes.symbols[e]))
        entries = [f for f in self.fills if f.reason == ENTRY]
        trades_per_episode = {e: 0 for e in order}
        for fill in entries:
            trades_per_episode[fill.episode] += 1
        skipped = sorted(set(range(episodes.n_episodes)) - set(order))
        states = None
        if self.keep_states and self.observations:
            states = (np.concatenate(self.observations), np.concatenate(self.masks))
        return EvaluationResult(
            policy=name, symbols=tuple(episodes.symbols[e] for e in order),
            days=tuple(episodes.days[e] for e in order),
            episode_pnl=np.array([self.pnl[e] for e in order]),
            episode_trades=np.array([trades_per_episode[e] for e in order], np.int64),
            trades=build_trades(self.fills, tape, premium, stop_loss_pct), fills=self.fills, action_counts=self.action_counts,
            entropies=np.concatenate(self.entropies) if self.entropies else None, states=states,
            steps=self.steps, seconds=seconds,
            skipped=[(episodes.symbols[e], episodes.days[e]) for e in skipped],
            reward_terms={name: total / max(self.steps, 1) for name, total in self.term_sums.items()},
            sessions={(episodes.symbols[e], episodes.days[e]): session_prices(tape, e) for e in order},
            episode_reward_terms=np.array([self.terms[e] for e in order]).reshape(len(order), -1))


def _play_group(policy: Policy, tape: MarketTape, config: EnvConfig, group: npt.NDArray[np.int64], n_steps: int,
                rng: np.random.Generator, run: _Run) -> None:
    """Episodes with ``n_steps`` decisions each, stepped together until their flatten bar."""
    days = [tape.episodes.days[e] for e in group.tolist()]
    group = group[np.lexsort(([tape.episodes.symbols[e] for e in group.tolist()], days))]
    _, accounts = np.unique([tape.episodes.days[e] for e in group.tolist()], return_inverse=True)
    batch = TradingBatch(tape, config, len(group))
    batch.fills = run.fills
    batch.start(np.arange(len(group)), group, tape.start_row[group], accounts=accounts.astype(np.int64))
    masks = batch.refresh_masks()
    for step in range(n_steps):
        observations = batch.observations()
        run.keep(observations, masks, step)
        actions, probabilities = policy.decide(observations, masks, tape.setup[batch.row], rng, batch.held_minutes())
        if probabilities is not None:
            run.entropies.append(entropy(probabilities))
        result = batch.step(actions)
        run.add_terms(result.terms)
        played = np.where(result.replaced, 0, actions)
        run.action_counts += np.bincount(played, minlength=N_ACTIONS)
        masks = batch.refresh_masks()
    if not result.terminated.all():
        raise AssertionError(f"{int((~result.terminated).sum())} episodes did not end after {n_steps} steps")
    run.steps += n_steps * len(group)
    for env, episode in enumerate(group.tolist()):
        run.pnl[episode] = float(batch.pnl_today[env])
        run.terms[episode] = batch.episode_terms[env].copy()


def entropy(probabilities: FloatArray) -> FloatArray:
    """Shannon entropy (nats) of each row of a probability matrix; zero entries add nothing."""
    p = np.asarray(probabilities, dtype=np.float64)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=1)


def session_prices(tape: MarketTape, episode: int) -> SessionPrices:
    first, last = int(tape.first_row[episode]), int(tape.session_last_row[episode])
    start, stop = int(tape.episodes.offsets[episode]), int(tape.episodes.offsets[episode + 1])
    return SessionPrices(np.asarray(tape.episodes.minute_of_day[start:stop], np.float64),
                         tape.close[first:last + 1].copy())


def build_trades(fills: list[Fill], tape: MarketTape, premium: PremiumModelConfig,
                 stop_loss_pct: float = 0.15) -> list[Trade]:
    """Group fills into trades: an entry opens one, sells close it once its contracts are all sold."""
    by_episode: dict[int, list[Fill]] = {}
    for fill in fills:
        by_episode.setdefault(fill.episode, []).append(fill)
    trades: list[Trade] = []
    for episode, episode_fills in sorted(by_episode.items()):
        trades.extend(_episode_trades(episode, episode_fills, tape, premium, stop_loss_pct))
    trades.sort(key=lambda t: (t.day, t.symbol, t.entry_row))
    return trades


def _quote(tape: MarketTape, episode: int, row: int, strike: float, side: int,
           premium: PremiumModelConfig) -> tuple[float, float]:
    """(bid, mid) of the position's option at tape ``row`` from the premium model."""
    bid, mid, _ = quote_at_vol(tape.specs.take(np.array([episode])), tape.close[row], strike, side == 1,
                               tape.t_years[row], tape.implied_vol[row], premium)
    return float(np.asarray(bid).reshape(-1)[0]), float(np.asarray(mid).reshape(-1)[0])


def _mid(tape: MarketTape, episode: int, row: int, strike: float, side: int, premium: PremiumModelConfig) -> float:
    """The premium model's mid of the position's option at tape ``row`` (what the fills' bid/ask surround)."""
    return _quote(tape, episode, row, strike, side, premium)[1]


def stop_trigger_price(tape: MarketTape, episode: int, fill: Fill, entry_price: float, strike: float,
                       premium: PremiumModelConfig, stop_loss_pct: float) -> float:
    """The bid that triggered a stop filled at ``fill``: the previous bar's when it was at or past the
    line (the usual next-bar fill), else the fill bar's own (a stop on the session's last bar)."""
    previous = fill.row - 1
    if previous >= int(tape.first_row[episode]):
        bid = _quote(tape, episode, previous, strike, fill.side, premium)[0]
        if bid / entry_price - 1.0 <= -stop_loss_pct + 1e-9:
            return bid
    return _quote(tape, episode, fill.row, strike, fill.side, premium)[0]


def _episode_trades(episode: int, fills: list[Fill], tape: MarketTape, premium: PremiumModelConfig,
                    stop_loss_pct: float) -> list[Trade]:
    first, last = int(tape.first_row[episode]), int(tape.session_last_row[episode])
    symbol, day = tape.episodes.symbols[episode], tape.episodes.days[episode]
    minute = tape.episodes.minute_of_day[int(tape.episodes.offsets[episode]):]
    trades, entry, sold, pnl, worst = [], None, 0, 0.0, np.inf
    exits: list[ExitFill] = []
    strike = entry_mid = gross = spread = 0.0
    for fill in fills:
        if fill.reason == ENTRY:
            entry, sold, pnl, worst, exits = fill, 0, 0.0, np.inf, []
            strike = float(np.asarray(atm_strike(tape.specs.take(np.array([episode])), tape.close[fill.row],
                                                 premium)).reshape(-1)[0])
            entry_mid = _mid(tape, episode, fill.row, strike, fill.side, premium)
            spread = float(premium_cash(fill.price - entry_mid, fill.contracts, premium))
            gross = 0.0
            continue
        if entry is None:
            raise ValueError(f"episode {episode}: an exit fill without an entry")
        sold += fill.contracts
        pnl += fill.pnl
        worst = min(worst, fill.price / entry.price - 1.0)
        exit_mid = _mid(tape, episode, fill.row, strike, fill.side, premium)
        gross += float(premium_cash(exit_mid - entry_mid, fill.contracts, premium))
        spread += float(premium_cash(exit_mid - fill.price, fill.contracts, premium))
        trigger = (stop_trigger_price(tape, episode, fill, entry.price, strike, premium, stop_loss_pct)
                   if fill.reason == STOP_EXIT else None)
        exits.append(ExitFill(fill.row - first, fill.contracts, fill.price, fill.reason, float(minute[fill.row - first]),
                              trigger))
        if sold >= entry.contracts:
            moves = tuple(float(tape.close[entry.row + h] - tape.close[entry.row]) if entry.row + h <= last
                          else float("nan") for h in MOMENTUM_HORIZONS)
            fees = float(2.0 * commission(entry.contracts, premium))
            trades.append(Trade(symbol, day, entry.side, entry.row - first, fill.row - first, entry.price,
                                entry.contracts, pnl, fill.reason, float(worst), moves, strike=strike,
                                entry_minute=float(minute[entry.row - first]),
                                exit_minute=float(minute[fill.row - first]), exits=tuple(exits),
                                gross=gross, spread_paid=spread, fees=fees))
            entry = None
    if entry is not None:
        raise ValueError(f"episode {episode}: a position was still open at the end of the day")
    return trades


def is_stop(reason: str) -> bool:
    return reason == STOP_EXIT
