"""The trading dynamics, vectorised over N environments: one numpy pass per step for all of them.

The single gymnasium env (``single.py``) runs this core with N = 1 and the batched VecEnv
(``vec.py``) with N = n_envs, so both follow the same rules by construction. Every rule is a shared
core function: the mask (``masks.action_masks``), the premium (``premium.quote_at_vol``,
``atm_strike``), the stop and its next-bar fill, the take-profit tiers, the flatten window
(``risk``) and the reward terms (``rewards.reward_terms``). See ``docs/environment.md``.

One step at session row ``i`` (the decision is taken at bar ``i``'s close):

1. an invalid (masked-out) action is replaced by HOLD;
2. an entry buys ``contracts`` at bar ``i``'s ask of the ATM strike (fixed from then on);
   TRIM_50 / TRIM_70 / EXIT sell at bar ``i``'s bid;
3. the clock moves to bar ``i+1`` and the shared lifecycle's per-bar rule
   (``scalper_shared.core.lifecycle.bar_exits``) runs at its bid: the stop (-15%) sells everything
   at bar ``i+2``'s bid (the NEXT bar; bar ``i+1``'s on the session's last bar); otherwise each
   take-profit tier reached sells its fraction at the bid; on the episode's last bar (the first of
   the flatten window) the rest is sold at the bid;
4. the account's daily-loss check (below) and the reward terms of the step; the episode ends on that last bar, or earlier (training only,
   ``EnvConfig.end_when_no_decision_left``) once it is flat and no entry can be allowed again today;
5. (training only, ``EnvConfig.skip_minutes_without_decision``) a flat environment in a cooldown
   moves on to its next minute with a decision within the same step.

**Accounts.** Every environment belongs to an account (:attr:`TradingBatch.account`; by default its
own: training's per-symbol episodes). The account-wide rules are execution's: trades per day
(entries of every symbol of the account that day), the daily loss limit (realised P&L plus the open
positions marked at their bid, less the entry commission of what is held, latched: once hit, the
account is HALTED for the rest of the day, as execution halts), concurrent positions, portfolio
contracts and contracts per entry (``RiskConfig.contracts_per_entry``). The evaluation engine puts
all symbols of a day in one account. Entries of one account on the same step are taken in
environment order, each checked against the tallies the earlier ones left, as execution takes
decisions one after another; an entry refused there plays HOLD. The loss check runs where execution
checks it: after the step's agent fills (a position just bought is marked at its price), and after
the new bar's marks (before the stop's next-bar fill, which execution sees one bar later).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from scalper_shared.core.actions import Action
from scalper_shared.core.arrays import BoolArray, FloatArray, IntArray
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.core.features.spec import MARKET_INDEX
from scalper_shared.core.lifecycle import ExitReason, Side, bar_exits, side_of_entry
from scalper_shared.core.masks import action_masks
from scalper_shared.core.premium import (
    PremiumModelConfig,
    atm_strike,
    commission,
    implied_vol,
    premium_cash,
    quote_at_vol,
    robust_ewma_vol,
    round_trip_pnl,
    symbol_spec_arrays,
    time_to_expiry_years,
)
from scalper_shared.core.rewards import REWARD_TERMS, position_value, reward_terms
from scalper_shared.core.risk import (
    contracts_to_sell,
    daily_loss_limit_hit,
    entries_over_for_the_day,
    in_flatten_window,
    stop_fill_price,
)
from scalper_shared.schema.messages import TradingState
from scalper_trainer.env.config import EnvConfig
from scalper_trainer.env.episodes import EpisodeSet

NO_EXIT = -(10**9)
"""``last_exit_row`` of an environment that has not exited today (minutes since exit = inf)."""
HOLD, BUY_CALL, BUY_PUT = int(Action.HOLD), int(Action.BUY_CALL), int(Action.BUY_PUT)
TRIM_FRACTIONS = ((int(Action.TRIM_50), 0.5), (int(Action.TRIM_70), 0.7), (int(Action.EXIT), 1.0))
EXTENSION_FEATURE = "dist_ema9"
"""The (close - EMA) / ATR extension the bad-chase reward term reads."""


def episode_vol_inputs(episodes: EpisodeSet, premium: PremiumModelConfig) -> FloatArray:
    """The premium model's vol input at every row: one robust EWMA per symbol over its sessions in
    day order (carried across sessions, never restarted at an open), scattered back to the rows."""
    vol = np.empty(episodes.close.size)
    bounds = list(zip(episodes.offsets[:-1], episodes.offsets[1:], strict=True))
    for symbol in sorted(set(episodes.symbols)):
        chosen = sorted((e for e in range(episodes.n_episodes) if episodes.symbols[e] == symbol),
                        key=lambda e: episodes.days[e])
        rows = np.concatenate([np.arange(*bounds[e]) for e in chosen])
        new_session = np.zeros(rows.size, dtype=bool)
        new_session[np.cumsum([0, *(bounds[e][1] - bounds[e][0] for e in chosen[:-1])])] = True
        vol[rows], _ = robust_ewma_vol(episodes.close[rows], new_session, premium)
    return vol


class MarketTape:
    """Episode arrays compiled for one :class:`EnvConfig`, laid out for O(1) gathers.

    Every episode gets ``window - 1`` zero rows in front, so the observation window ending at global
    row ``g`` is ``windows[g - window + 1]``: a strided view, no copy, zero rows before the session
    exactly as ``observation_at`` pads them. Premium inputs (implied vol, years to expiry) are
    computed once per bar with the shared premium functions.
    """

    def __init__(self, episodes: EpisodeSet, config: EnvConfig) -> None:
        if episodes.n_episodes == 0:
            raise ValueError("no episodes")
        window, n_market = FEATURE_SPEC.window, FEATURE_SPEC.n_market
        pad = window - 1
        lengths = episodes.lengths
        self.first_row: IntArray = episodes.offsets[:-1] + pad * (np.arange(episodes.n_episodes) + 1)
        self.session_last_row: IntArray = self.first_row + lengths - 1
        total = int(episodes.offsets[-1]) + pad * episodes.n_episodes
        rows = np.repeat(self.first_row - episodes.offsets[:-1], lengths) + np.arange(episodes.offsets[-1])

        def spread(values: npt.NDArray, dtype: type, fill: float = 0.0) -> npt.NDArray:
            out: npt.NDArray = np.full(total, fill, dtype=dtype)
            out[rows] = values
            return out

        features = np.zeros((total, n_market), dtype=np.float32)
        features[rows] = episodes.features
        self.features = features
        self.windows = as_strided(features, shape=(total - pad, window, n_market),
                                  strides=(features.strides[0], *features.strides), writeable=False)
        self.pad = pad
        self.close = spread(episodes.close, np.float64, 1.0)
        self.minutes_to_close = spread(episodes.minutes_to_close, np.float64)
        self.setup = spread(episodes.setup, np.int8)
        self.extension = spread(episodes.features[:, MARKET_INDEX[EXTENSION_FEATURE]], np.float64)
        premium = config.premium
        vol = episode_vol_inputs(episodes, premium)
        self.implied_vol = spread(implied_vol(vol, episodes.minute_of_day, premium), np.float64, 1.0)
        self.t_years = spread(time_to_expiry_years(episodes.minutes_to_close, premium), np.float64, 1.0)
        self.specs = symbol_spec_arrays(episodes.symbols, premium)
        self.episodes = episodes
        self._bounds(config)

    def _bounds(self, config: EnvConfig) -> None:
        """Per episode: the first decision row and the last row (first bar of the flatten window)."""
        flatten = np.asarray(in_flatten_window(self.minutes_to_close, config.risk))
        flatten[self.session_last_row] = True
        flatten[:self.pad] = False
        candidates = np.flatnonzero(flatten)
        self.end_row: IntArray = candidates[np.searchsorted(candidates, self.first_row)]
        self.start_row: IntArray = self.first_row + config.sampling.start_row
        usable = self.end_row - self.start_row >= config.sampling.min_steps
        self.usable: IntArray = np.flatnonzero(usable)
        if self.usable.size == 0:
            raise ValueError(f"none of {len(usable)} episodes has {config.sampling.min_steps} decisions "
                             f"from row {config.sampling.start_row} to the flatten window")
        self.random_start_minutes = config.sampling.random_start_minutes

    def draw(self, rng: np.random.Generator) -> tuple[int, int]:
        """(episode, first decision row) for one reset: two draws from ``rng``, always two."""
        episode = int(self.usable[rng.integers(self.usable.size)])
        offset = int(rng.integers(self.random_start_minutes + 1))
        return episode, min(int(self.start_row[episode]) + offset, int(self.end_row[episode]) - 1)


@dataclass(frozen=True, slots=True)
class StepResult:
    reward: FloatArray
    terms: dict[str, FloatArray]
    terminated: BoolArray
    replaced: BoolArray
    """True where the action was masked out and HOLD was played instead."""


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill of one environment, recorded when :attr:`TradingBatch.fills` is a list (evaluation).

    ``reason`` is :data:`ENTRY` for a buy, else the :class:`ExitReason` the contracts were sold for
    (``agent``, ``stop``, ``tp1``/``tp2``/..., ``end_of_day``). ``side`` is a :class:`Side`. ``row`` is the
    tape row of the fill (a stop fills on the bar after its trigger); ``pnl`` is the net dollars of
    the contracts sold (0 for an entry).
    """

    env: int
    episode: int
    row: int
    reason: str
    side: int
    contracts: int
    price: float
    pnl: float


ENTRY = "entry"
"""``Fill.reason`` of a buy (every other fill carries its :class:`ExitReason`)."""
AGENT_EXIT, STOP_EXIT, END_OF_DAY_EXIT = ExitReason.AGENT, ExitReason.STOP, ExitReason.END_OF_DAY


class TradingBatch:
    """The state of N environments and their vectorised step. No Python loop over environments."""

    def __init__(self, tape: MarketTape, config: EnvConfig, n: int) -> None:
        self.tape, self.config, self.n = tape, config, n
        self.episode = np.zeros(n, np.int64)
        self.row = np.zeros(n, np.int64)
        self.end_row = np.zeros(n, np.int64)
        self.side = np.zeros(n, np.int64)
        self.strike = np.zeros(n)
        self.entry_price = np.ones(n)
        self.entry_contracts = np.ones(n, np.int64)
        self.entry_row = np.zeros(n, np.int64)
        self.held = np.zeros(n, np.int64)
        self.tiers_hit = np.zeros(n, np.int64)
        self.mark_bid = np.zeros(n)
        self.trades_today = np.zeros(n, np.int64)
        self.last_exit_row = np.full(n, NO_EXIT, np.int64)
        self.exit_was_stop = np.zeros(n, bool)
        self.pnl_today = np.zeros(n)
        self.episode_return = np.zeros(n)
        self.episode_length = np.zeros(n, np.int64)
        self.episode_terms = np.zeros((n, len(REWARD_TERMS)))
        self._closed = np.zeros(n, np.int64)
        self._exit_value = np.zeros(n)
        self.masks = np.zeros((n, len(Action)), bool)
        self.account = np.arange(n, dtype=np.int64)
        """The account of each environment (ids in ``0..n-1``): by default its own."""
        self.halted = np.zeros(n, bool)
        """The account hit its daily loss limit today (kept equal over an account's environments)."""
        self.stopping = np.zeros(n, np.int64)
        """Contracts a stop sold on this bar: execution holds them, marked at the trigger bar's bid,
        until the stop's order fills on the next bar, so they count for the account until then."""
        self._stopping_value = np.zeros(n)
        """What the account's P&L gains back until the stop fills: the trigger bid over the fill, and
        the exit commission (execution books both when the order fills on the next bar)."""
        self.fills: list[Fill] | None = None
        """Set to a list to record every :class:`Fill` (off for training: costs a Python loop per fill)."""

    # -- episodes ------------------------------------------------------------------------------

    def start(self, envs: IntArray, episodes: IntArray, start_rows: IntArray,
              accounts: IntArray | None = None) -> None:
        """Begin new episodes (flat, fresh day tallies) in environments ``envs``; ``accounts`` puts them
        in shared accounts (ids in ``0..n-1``), else each keeps its own."""
        if accounts is not None:
            self.account[envs] = accounts
        self.halted[envs] = False
        self.stopping[envs] = 0
        self._stopping_value[envs] = 0.0
        self.episode[envs] = episodes
        self.row[envs] = start_rows
        self.end_row[envs] = self.tape.end_row[episodes]
        for array, value in ((self.side, 0), (self.held, 0), (self.tiers_hit, 0), (self.trades_today, 0),
                             (self.last_exit_row, NO_EXIT), (self.exit_was_stop, False),
                             (self.pnl_today, 0.0), (self.episode_return, 0.0), (self.episode_length, 0),
                             (self.mark_bid, 0.0), (self.strike, 0.0), (self.entry_price, 1.0),
                             (self.entry_contracts, 1)):
            array[envs] = value
        self.episode_terms[envs] = 0.0

    def held_minutes(self) -> IntArray:
        """Minutes since the open position's entry (bars of the session grid); -1 where flat."""
        return np.where(self.held > 0, self.row - self.entry_row, -1)

    def session_rows(self) -> IntArray:
        """The current bar of each environment as a row of its session (0 = the first bar)."""
        return self.row - self.tape.first_row[self.episode]

    # -- observation and mask ------------------------------------------------------------------

    def observations(self, envs: IntArray | slice = slice(None)) -> npt.NDArray[np.float32]:
        """(len(envs), 20, 23) float32: the market window plus the position columns on every row."""
        window = self.tape.windows[self.row[envs] - self.tape.pad]
        out = np.empty((*window.shape[:2], FEATURE_SPEC.n_features), dtype=np.float32)
        out[:, :, :FEATURE_SPEC.n_market] = window
        side_def, pnl_def = FEATURE_SPEC.position
        held = self.held[envs] > 0
        pnl = np.where(held, np.clip(self.mark_bid[envs] / self.entry_price[envs] - 1.0,
                                     pnl_def.low, pnl_def.high), 0.0)
        out[:, :, FEATURE_SPEC.n_market] = np.where(held, self.side[envs], 0)[:, None]
        out[:, :, FEATURE_SPEC.n_market + 1] = pnl[:, None]
        return out

    def refresh_masks(self) -> BoolArray:
        """Recompute the (N, 6) masks of the current bar with the shared mask rule."""
        since = np.where(self.last_exit_row == NO_EXIT, np.inf, (self.row - self.last_exit_row).astype(float))
        self.masks = action_masks(self.held > 0, minutes_to_close=self.tape.minutes_to_close[self.row],
                                  trading_state=self.trading_states(), trades_today=self.account_trades(),
                                  minutes_since_exit=since, exit_was_stop=self.exit_was_stop,
                                  pnl_today=self.account_pnl(), config=self.config.risk)
        self.masks[:, [BUY_CALL, BUY_PUT]] &= ~self._size_blocked()[:, None]
        return self.masks

    # -- the account ---------------------------------------------------------------------------

    def _account_sum(self, values: npt.ArrayLike) -> FloatArray:
        """Each environment's account total of ``values`` (one value per environment)."""
        weights = np.asarray(values, dtype=np.float64)
        totals: FloatArray = np.bincount(self.account, weights=weights, minlength=self.n).astype(np.float64, copy=False)
        return totals[self.account]

    def account_trades(self) -> IntArray:
        """Entries of the environment's account today (every symbol): the trades-per-day count."""
        return self._account_sum(self.trades_today).astype(np.int64)

    def account_pnl(self) -> FloatArray:
        """The account's P&L as execution counts it: realised, plus the open positions marked at
        their bid, less the entry commission of the contracts still held."""
        premium = self.config.premium
        held = self.held > 0
        open_value = np.where(held & (self.mark_bid > 0),
                              premium_cash(self.mark_bid - self.entry_price, self.held, premium), 0.0)
        open_fees = np.where(held, commission(self.held, premium), 0.0)
        return self._account_sum(self.pnl_today + open_value - open_fees + self._stopping_value)

    def _account_positions(self) -> tuple[FloatArray, FloatArray]:
        """(open positions, contracts held) of each environment's account, stops not yet filled included."""
        holding = self.held + self.stopping
        return self._account_sum(holding > 0), self._account_sum(holding)

    def trading_states(self) -> npt.NDArray[np.object_]:
        return np.where(self.halted, TradingState.HALTED.value, TradingState.ACTIVE.value).astype(object)

    def _size_blocked(self) -> BoolArray:
        """Entries the account's sizes refuse: concurrent positions, portfolio contracts, order size."""
        risk = self.config.risk
        positions, contracts = self._account_positions()
        return np.asarray((positions >= risk.max_concurrent_positions)
                          | (contracts + risk.contracts_per_entry > risk.max_portfolio_contracts)
                          | (risk.contracts_per_entry > risk.max_contracts_per_order))

    def _check_daily_loss(self) -> None:
        """Latch HALTED on accounts down ``max_daily_loss`` or more (:meth:`account_pnl`)."""
        hit = np.asarray(daily_loss_limit_hit(self.account_pnl(), self.config.risk), dtype=bool)
        self.halted |= hit

    # -- step ----------------------------------------------------------------------------------

    def step(self, actions: npt.ArrayLike) -> StepResult:
        """Apply one action per environment and move every clock one bar (see the module doc)."""
        requested = np.asarray(actions, dtype=np.int64).reshape(self.n)
        allowed = self.masks[np.arange(self.n), requested]
        action = np.where(allowed, requested, HOLD)
        was_flat = self.held == 0
        entry_allowed = self.masks[:, BUY_CALL] | self.masks[:, BUY_PUT]
        value_before = self._position_value()
        decision_row = self.row
        self._closed[:] = 0
        self._exit_value[:] = 0.0
        refused = self._enter(was_flat, action, decision_row)
        action = np.where(refused, HOLD, action)
        self._reduce(was_flat, action, decision_row)
        self._check_daily_loss()
        self.row = decision_row + 1
        stop_fired = self._apply_risk()
        terms = reward_terms(
            action=action, was_flat=was_flat, entry_allowed=entry_allowed,
            strong_call_setup=self.tape.setup[decision_row] == 1,
            strong_put_setup=self.tape.setup[decision_row] == -1,
            extension_atr=self.tape.extension[decision_row], closed_contracts=self._closed,
            entry_price=self.entry_price,
            exit_price=np.where(self._closed > 0, self._exit_value / np.maximum(self._closed, 1), np.nan),
            entry_contracts=self.entry_contracts, stop_fired=stop_fired,
            position_value_change=self._position_value() - value_before,
            config=self.config.reward, premium_config=self.config.premium)
        reward = terms["total"]
        self.episode_return += reward
        self.episode_length += 1
        self.episode_terms += np.stack([terms[name] for name in REWARD_TERMS], axis=1)
        over = self._episode_over()
        if self.config.skip_minutes_without_decision:
            over = self._skip_idle_minutes(over)
        return StepResult(reward, terms, over, ~allowed | refused)

    def _skip_idle_minutes(self, over: BoolArray) -> BoolArray:
        """Move flat environments whose entries are only briefly blocked (a cooldown) on to their next
        minute with a decision, or their episode's end: minutes where HOLD is the only legal action
        teach nothing, and a flat minute earns no reward."""
        for _ in range(int(self.config.risk.cooldown_after_stop_minutes) + 2):
            masks = self.refresh_masks()
            idle = (self.held == 0) & ~masks[:, BUY_CALL] & ~over
            if not idle.any():
                break
            self.row = np.where(idle, self.row + 1, self.row)
            over = self._episode_over()
        return over

    def _episode_over(self) -> BoolArray:
        """At the flatten bar; or (``end_when_no_decision_left``) flat with entries over for the day."""
        over = self.row >= self.end_row
        if self.config.end_when_no_decision_left:
            over = over | ((self.held == 0) & (self.halted | np.asarray(entries_over_for_the_day(
                self.tape.minutes_to_close[self.row], self.account_trades(), self.account_pnl(),
                self.config.risk))))
        return np.asarray(over, dtype=bool)

    def _position_value(self) -> FloatArray:
        """Net dollars of selling what is held at its last mark (the mark-to-market potential)."""
        return position_value(self.entry_price, self.mark_bid, self.held, self.config.premium)

    def _quote_bid_ask(self, envs: IntArray, rows: IntArray) -> tuple[FloatArray, FloatArray]:
        tape = self.tape
        bid, _, ask = quote_at_vol(tape.specs.take(self.episode[envs]), tape.close[rows], self.strike[envs],
                                   self.side[envs] == Side.CALL, tape.t_years[rows], tape.implied_vol[rows],
                                   self.config.premium)
        return np.atleast_1d(bid), np.atleast_1d(ask)

    def _enter(self, was_flat: BoolArray, action: IntArray, rows: IntArray) -> BoolArray:
        """Open the entries the account still allows; True where an entry was refused (plays HOLD)."""
        refused = np.zeros(self.n, bool)
        buyers = np.flatnonzero(was_flat & ((action == BUY_CALL) | (action == BUY_PUT)))
        if buyers.size == 0:
            return refused
        late = self._account_rank(buyers) > 0
        if late.any():  # another entry of the same account came first this step: check again after it
            refused[buyers[late]] = ~self._allows_after(buyers, late)
            buyers = buyers[~refused[buyers]]
        at = rows[buyers]
        self.side[buyers] = side_of_entry(action[buyers] == BUY_CALL)
        self.strike[buyers] = atm_strike(self.tape.specs.take(self.episode[buyers]), self.tape.close[at],
                                         self.config.premium)
        bid, ask = self._quote_bid_ask(buyers, at)
        self.entry_price[buyers] = ask
        self.entry_row[buyers] = at
        self.mark_bid[buyers] = bid
        self.mark_bid[buyers] = ask  # execution marks a new position at its fill until the next bar
        contracts = self.config.risk.contracts_per_entry
        self.entry_contracts[buyers] = contracts
        self.held[buyers] = contracts
        self.tiers_hit[buyers] = 0
        self.trades_today[buyers] += 1
        if self.fills is not None:
            self._record(buyers, np.full(buyers.size, contracts), ask, at, ENTRY, np.zeros(buyers.size))
        return refused

    def _account_rank(self, envs: IntArray) -> IntArray:
        """Each of ``envs`` (ascending) counted among the earlier ones of its account (0: the first)."""
        accounts = self.account[envs]
        order = np.argsort(accounts, kind="stable")
        ordered = accounts[order]
        first = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
        rank = np.arange(envs.size) - np.repeat(first, np.diff(np.r_[first, envs.size]))
        out = np.empty(envs.size, np.int64)
        out[order] = rank
        return out

    def _allows_after(self, buyers: IntArray, late: BoolArray) -> BoolArray:
        """For the ``late`` buyers: whether the account's caps still allow them after the buyers before
        them on this step (taken in order, the way execution takes decisions one at a time)."""
        risk = self.config.risk
        allowed = np.ones(buyers.size, bool)
        trades = self.account_trades()
        positions, contracts = self._account_positions()
        taken: dict[int, int] = {}
        for k, env in enumerate(buyers.tolist()):
            account = int(self.account[env])
            before = taken.get(account, 0)
            if late[k]:
                allowed[k] = (trades[env] + before < risk.max_trades_per_day
                              and positions[env] + before < risk.max_concurrent_positions
                              and contracts[env] + (before + 1) * risk.contracts_per_entry
                              <= risk.max_portfolio_contracts)
            if allowed[k]:
                taken[account] = before + 1
        return allowed[late]

    def _reduce(self, was_flat: BoolArray, action: IntArray, rows: IntArray) -> None:
        for reducing, fraction in TRIM_FRACTIONS:
            envs = np.flatnonzero(~was_flat & (action == reducing))
            if envs.size:
                self._sell(envs, contracts_to_sell(self.held[envs], fraction), self.mark_bid[envs],
                           rows[envs], ExitReason.AGENT)

    def _apply_risk(self) -> BoolArray:
        """Mark open positions at the new bar's bid and apply the shared per-bar rule to them
        (``lifecycle.bar_exits``: stop at the next bar's bid, take-profit tiers, flatten window)."""
        stop_fired = np.zeros(self.n, bool)
        self.stopping[:] = 0  # the new bar fills the stops of the last one
        self._stopping_value[:] = 0.0
        envs = np.flatnonzero(self.held > 0)
        if envs.size == 0:
            self._check_daily_loss()
            return stop_fired
        now = self.row[envs]
        following = np.minimum(now + 1, self.tape.session_last_row[self.episode[envs]])
        bids, _ = self._quote_bid_ask(np.concatenate([envs, envs]), np.concatenate([now, following]))
        bid_now, bid_next = bids[:envs.size], bids[envs.size:]
        self.mark_bid[envs] = bid_now
        self._check_daily_loss()
        held_before = self.held[envs].copy()
        exits = bar_exits(self.entry_price[envs], bid_now, self.held[envs], self.tiers_hit[envs],
                          now >= self.end_row[envs], self.config.risk)
        stopped = exits.stop
        if stopped.any():
            stop_fired[envs[stopped]] = True
            self._sell(envs[stopped], self.held[envs[stopped]], stop_fill_price(bid_next[stopped]),
                       following[stopped], ExitReason.STOP)
        self.tiers_hit[envs] = exits.tiers_hit
        for k in range(exits.tier_contracts.shape[1]):
            hit = exits.tier_contracts[:, k] > 0
            if hit.any():
                self._sell(envs[hit], exits.tier_contracts[hit, k], bid_now[hit], now[hit],
                           ExitReason.take_profit(k + 1))
        flatten = exits.flatten_contracts > 0
        if flatten.any():
            self._sell(envs[flatten], exits.flatten_contracts[flatten], bid_now[flatten], now[flatten],
                       ExitReason.END_OF_DAY)
        if stopped.any():  # its order fills at the next bar: until then execution holds it at this bar's bid
            sold = held_before[stopped]
            self.stopping[envs[stopped]] = sold
            self._stopping_value[envs[stopped]] = (
                premium_cash(bid_now[stopped] - stop_fill_price(bid_next[stopped]), sold, self.config.premium)
                + commission(sold, self.config.premium))
        self._check_daily_loss()
        return stop_fired

    def _sell(self, envs: IntArray, contracts: npt.ArrayLike, price: npt.ArrayLike, exit_rows: IntArray,
              reason: ExitReason) -> None:
        sold = np.atleast_1d(np.asarray(contracts, dtype=np.int64))
        fill = np.atleast_1d(np.asarray(price, dtype=np.float64))
        self.held[envs] -= sold
        self._closed[envs] += sold
        self._exit_value[envs] += sold * fill
        pnl = np.atleast_1d(round_trip_pnl(self.entry_price[envs], fill, sold, self.config.premium))
        self.pnl_today[envs] += pnl
        if self.fills is not None:
            self._record(envs, sold, fill, np.atleast_1d(exit_rows), reason, pnl)
        closed = self.held[envs] == 0
        self.side[envs[closed]] = Side.FLAT
        self.last_exit_row[envs[closed]] = np.atleast_1d(exit_rows)[closed]
        self.exit_was_stop[envs[closed]] = reason is ExitReason.STOP

    def _record(self, envs: IntArray, contracts: npt.ArrayLike, price: npt.ArrayLike, rows: npt.ArrayLike,
                reason: str, pnl: npt.ArrayLike) -> None:
        assert self.fills is not None
        count, at = np.broadcast_to(contracts, envs.shape), np.broadcast_to(rows, envs.shape)
        fill, money = np.broadcast_to(price, envs.shape), np.broadcast_to(pnl, envs.shape)
        for k, env in enumerate(envs.tolist()):
            self.fills.append(Fill(env, int(self.episode[env]), int(at[k]), reason, int(self.side[env]), int(count[k]),
                                   float(fill[k]), float(money[k])))

    # -- episode summary -----------------------------------------------------------------------

    def episode_summary(self, env: int) -> dict[str, object]:
        """What an info dict carries at the end of environment ``env``'s episode."""
        episode = int(self.episode[env])
        return {
            "episode": {"r": float(self.episode_return[env]), "l": int(self.episode_length[env])},
            "episode_reward_terms": dict(zip(REWARD_TERMS, self.episode_terms[env].tolist(), strict=True)),
            "episode_trades": int(self.trades_today[env]),
            "episode_pnl": float(self.pnl_today[env]),
            "symbol": self.tape.episodes.symbols[episode],
            "day": self.tape.episodes.days[episode].isoformat(),
        }
