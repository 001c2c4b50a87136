"""The reward: realised P&L plus shaping terms, each returned separately so each can be logged.

All terms are per environment step and vectorised over N environments. Inputs are what the
environment knows after applying an action; the "strong setup" rule and the EMA/ATR extension come
from the features module and are passed in (booleans and floats), never re-derived here.

Scaling (``RewardConfig.pnl_scale``): the P&L term is the net dollar P&L of the contracts closed
this step (exit at the bid, entry at the ask, commission on both fills) divided either by the
position's entry cost (``entry_cost``: a fraction of premium, a full -15% stop is about -0.15, the
terms of every trim and exit of one position add up to its net return) or by a fixed
``dollars_per_unit`` (``dollars``: the episode's P&L terms add up to its dollars / that unit, so
reward sums rank policies exactly as money does). See ``docs/rewards.md`` and
``docs/premium-and-risk.md``.

Two named reward configurations (the presets' reward halves): :data:`DEFAULT_REWARD_CONFIG` (after-
cost dollars plus potential-based mark-to-market shaping, nothing else) and
:data:`SEED_REWARD_CONFIG` (the seed research run's weights, unchanged).

Decision steps: the missed-opportunity penalty and the HOLD tax apply only where the agent really
chose to hold: flat AND an entry was allowed by the mask (``entry_allowed``). Holding through a
cooldown, after the daily-loss limit or past the entry cutoff costs nothing: HOLD was the only legal
action there.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scalper_shared.core.actions import Action
from scalper_shared.core.arrays import FloatArray
from scalper_shared.core.premium import (
    DEFAULT_PREMIUM_CONFIG,
    PremiumModelConfig,
    premium_cash,
    round_trip_pnl,
)

REWARD_TERMS = ("pnl", "mark_to_market", "scalp_tier", "good_buy", "missed_opportunity", "bad_chase",
                "hold_tax", "stop_loss")
"""The term names :func:`reward_terms` returns, besides ``total``."""

class RewardConfig(BaseModel):
    """Reward weights. Frozen; saved with every model. The field defaults are the ``default`` preset
    (:data:`DEFAULT_REWARD_CONFIG`); :data:`SEED_REWARD_CONFIG` holds the seed research run's weights.

    ``scalp_tiers``: (realised premium gain, bonus) pairs; a close at a gain pays the bonus of the
    highest tier reached, times the fraction of the position closed. ``mark_to_market_weight``
    scales the potential-based term: the change of the open position's value at the bid (what
    selling it now would net, both commissions included), so a position's P&L is paid minute by
    minute as it accrues and the episode's terms still add up to its realised P&L. PPO's ``ent_coef``
    is a training hyperparameter and lives with the PPO config, not here.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    pnl_weight: float = Field(default=1.0, ge=0)
    """Weight of the realised P&L term (after costs: entry at the ask, exit at the bid, both commissions)."""
    pnl_scale: Literal["dollars", "entry_cost"] = "dollars"
    """Divide P&L by ``dollars_per_unit`` (``dollars``: reward sums rank policies exactly as money does)
    or by the position's entry cost (``entry_cost``: a fraction of premium, a full stop is about -0.15)."""
    dollars_per_unit: float = Field(default=1000.0, gt=0)
    """Dollars per unit of reward with ``pnl_scale="dollars"``: a fixed unit, so a day's terms add up to
    its dollars / this whatever premium each trade paid (docs/rewards.md)."""
    mark_to_market_weight: float = Field(default=1.0, ge=0)
    """Weight of the potential-based term: the change of the open position's value at the bid, so P&L
    is paid minute by minute as it accrues; it sums to 0 over a position (0 turns it off)."""
    scalp_tiers: tuple[tuple[float, float], ...] = ()
    """(realised premium gain, bonus) pairs with ascending gains: a close pays the bonus of the highest
    tier reached, times the fraction of the position closed. None by default (the seed run's six)."""
    good_buy_call_bonus: float = 0.0
    """Added for an entry from flat into a call on a strong call setup (the features' rule)."""
    good_buy_put_bonus: float = 0.0
    """Added for an entry from flat into a put on a strong put setup."""
    missed_opportunity_penalty: float = 0.0
    """Added (negative to penalise) for HOLD on a decision step during a strong setup of either side."""
    bad_chase_penalty: float = 0.0
    """Added (negative to penalise) for an entry at least ``chase_threshold_atr`` beyond the EMA in the
    trade's direction."""
    chase_threshold_atr: float = Field(default=2.0, gt=0)
    """An entry is a chase when price is this many ATRs beyond its EMA in the trade's direction."""
    hold_tax: float = 0.0
    """Added (negative to tax) for every HOLD on a decision step: flat and an entry allowed by the mask."""
    stop_loss_penalty: float = 0.0
    """Added (negative to penalise) on the step where the stop closed the position."""

    @model_validator(mode="after")
    def _ascending_tiers(self) -> RewardConfig:
        gains = [gain for gain, _ in self.scalp_tiers]
        if gains != sorted(gains) or len(set(gains)) != len(gains):
            raise ValueError(f"scalp_tiers need strictly ascending gains, got {gains}")
        return self


DEFAULT_REWARD_CONFIG = RewardConfig()
"""The ``default`` preset's reward: after-cost dollars (per $1,000) plus mark-to-market shaping."""

SEED_REWARD_CONFIG = RewardConfig(
    pnl_weight=1.0, pnl_scale="entry_cost", mark_to_market_weight=0.0,
    scalp_tiers=((0.20, 0.02), (0.30, 0.04), (0.50, 0.06), (0.70, 0.08), (1.00, 0.12), (2.00, 0.20)),
    good_buy_call_bonus=0.12, good_buy_put_bonus=0.10, missed_opportunity_penalty=-0.06,
    bad_chase_penalty=-0.03, chase_threshold_atr=2.0, hold_tax=-0.0005, stop_loss_penalty=-0.10)
"""The seed research run's reward, weight for weight (its PPO side, ent_coef 0.08, is the preset's)."""


def _f(values: ArrayLike) -> FloatArray:
    return np.atleast_1d(np.asarray(values, dtype=np.float64))


def _b(values: ArrayLike) -> NDArray[np.bool_]:
    return np.atleast_1d(np.asarray(values, dtype=bool))


def realised_pnl_term(closed_contracts: ArrayLike, entry_price: ArrayLike, exit_price: ArrayLike,
                      entry_contracts: ArrayLike, config: RewardConfig = DEFAULT_REWARD_CONFIG,
                      premium_config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> FloatArray:
    """Net P&L of the contracts closed this step over the P&L unit (:func:`pnl_unit`); 0 when none closed."""
    closed = _f(closed_contracts)
    has_close = closed > 0
    entry = np.where(has_close, _f(entry_price), 1.0)
    exit_ = np.where(has_close, _f(exit_price), 1.0)
    pnl = np.asarray(round_trip_pnl(entry, exit_, closed, premium_config))
    unit = pnl_unit(entry, entry_contracts, config, premium_config)
    return np.where(has_close, config.pnl_weight * pnl / unit, 0.0)


def pnl_unit(entry_price: ArrayLike, entry_contracts: ArrayLike, config: RewardConfig = DEFAULT_REWARD_CONFIG,
             premium_config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> FloatArray:
    """Dollars that make one unit of reward: the position's entry cost, or ``dollars_per_unit``."""
    if config.pnl_scale == "dollars":
        return np.full(np.broadcast_shapes(np.shape(_f(entry_price)), np.shape(_f(entry_contracts))),
                       config.dollars_per_unit)
    entry = np.where(np.isfinite(_f(entry_price)), _f(entry_price), 1.0)
    return np.asarray(premium_cash(entry, np.maximum(_f(entry_contracts), 1.0), premium_config), dtype=np.float64)


def position_value(entry_price: ArrayLike, mark_bid: ArrayLike, held_contracts: ArrayLike,
                   premium_config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> FloatArray:
    """What selling the ``held_contracts`` at ``mark_bid`` would net against their entry (both
    commissions included): the potential of the mark-to-market term; 0 when flat."""
    held = _f(held_contracts)
    has = held > 0
    value = round_trip_pnl(np.where(has, _f(entry_price), 0.0), np.where(has, _f(mark_bid), 0.0), held,
                           premium_config)
    return np.where(has, np.asarray(value, dtype=np.float64), 0.0)


def scalp_tier_bonus(closed_contracts: ArrayLike, entry_price: ArrayLike, exit_price: ArrayLike,
                     entry_contracts: ArrayLike, config: RewardConfig = DEFAULT_REWARD_CONFIG) -> FloatArray:
    """Bonus of the highest scalp tier the realised premium gain (bid out / ask in - 1) reached,
    times the fraction of the position closed."""
    closed = _f(closed_contracts)
    has_close = closed > 0
    gain = np.where(has_close, _f(exit_price) / np.where(has_close, _f(entry_price), 1.0) - 1.0, -np.inf)
    thresholds = np.array([g for g, _ in config.scalp_tiers])
    bonuses = np.concatenate(([0.0], [b for _, b in config.scalp_tiers]))
    reached = np.searchsorted(thresholds, gain + 1e-9, side="right")
    fraction = closed / np.maximum(_f(entry_contracts), 1.0)
    return np.asarray(bonuses[reached] * fraction, dtype=np.float64)


def reward_terms(*, action: ArrayLike, was_flat: ArrayLike, entry_allowed: ArrayLike,
                 strong_call_setup: ArrayLike = False, strong_put_setup: ArrayLike = False,
                 extension_atr: ArrayLike = 0.0, closed_contracts: ArrayLike = 0,
                 entry_price: ArrayLike = np.nan, exit_price: ArrayLike = np.nan,
                 entry_contracts: ArrayLike = 1, stop_fired: ArrayLike = False,
                 position_value_change: ArrayLike = 0.0,
                 config: RewardConfig = DEFAULT_REWARD_CONFIG,
                 premium_config: PremiumModelConfig = DEFAULT_PREMIUM_CONFIG) -> dict[str, FloatArray]:
    """Every reward term of one step for N environments, plus their ``total``.

    ``action``: the action taken; ``was_flat``: flat before it; ``entry_allowed``: the mask allowed
    BUY_CALL or BUY_PUT before it (with ``was_flat``: a decision step). ``extension_atr``: (close - EMA) / ATR,
    signed. ``closed_contracts`` were sold this step (trim, exit, stop or flatten) at ``exit_price``
    (the bid) out of ``entry_contracts`` bought at ``entry_price`` (the ask). ``stop_fired``: the
    -15% stop closed the position this step. ``position_value_change``: :func:`position_value` after
    the step minus before it, in dollars (the mark-to-market term's input).
    """
    act = np.atleast_1d(np.asarray(action, dtype=np.int64))
    flat = _b(was_flat)
    call_setup, put_setup = _b(strong_call_setup), _b(strong_put_setup)
    extension = _f(extension_atr)
    bought_call = flat & (act == Action.BUY_CALL)
    bought_put = flat & (act == Action.BUY_PUT)
    held_flat = flat & _b(entry_allowed) & (act == Action.HOLD)
    chase = (bought_call & (extension >= config.chase_threshold_atr)) | \
            (bought_put & (extension <= -config.chase_threshold_atr))
    terms = {
        "pnl": realised_pnl_term(closed_contracts, entry_price, exit_price, entry_contracts, config,
                                 premium_config),
        "mark_to_market": config.mark_to_market_weight * _f(position_value_change)
        / pnl_unit(entry_price, entry_contracts, config, premium_config),
        "scalp_tier": scalp_tier_bonus(closed_contracts, entry_price, exit_price, entry_contracts, config),
        "good_buy": np.where(bought_call & call_setup, config.good_buy_call_bonus, 0.0)
        + np.where(bought_put & put_setup, config.good_buy_put_bonus, 0.0),
        "missed_opportunity": np.where(held_flat & (call_setup | put_setup),
                                       config.missed_opportunity_penalty, 0.0),
        "bad_chase": np.where(chase, config.bad_chase_penalty, 0.0),
        "hold_tax": np.where(held_flat, config.hold_tax, 0.0),
        "stop_loss": np.where(_b(stop_fired), config.stop_loss_penalty, 0.0),
    }
    shape = np.broadcast_shapes(*(np.shape(v) for v in terms.values()))
    out = {name: _own_array(v, shape) for name, v in terms.items()}
    total = out[REWARD_TERMS[0]].copy()
    for name in REWARD_TERMS[1:]:
        total += out[name]
    out["total"] = total
    return out


def _own_array(values: ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    """``values`` (freshly computed above, so never shared) as a float64 array of ``shape``."""
    arr = np.asarray(values, dtype=np.float64)
    return arr if arr.shape == shape else np.broadcast_to(arr, shape).copy()


def total_reward(**kwargs: Any) -> FloatArray:
    """Just the ``total`` of :func:`reward_terms` (same arguments)."""
    return reward_terms(**kwargs)["total"]
