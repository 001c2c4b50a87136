"""The trading environment's rules on hand-made sessions, against hand-computed expectations.

Prices use a flat 20% implied vol (``env_support.FLAT_VOL_PREMIUM``), so every premium is a textbook
Black-Scholes value computed here with ``math.erf`` and SPY's documented spread rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from scalper_shared.core.actions import Action
from scalper_shared.core.premium import quote, robust_ewma_vol
from scalper_shared.core.rewards import REWARD_TERMS, SEED_REWARD_CONFIG
from scalper_shared.core.risk import RiskConfig
from scalper_trainer.env import EnvConfig, EpisodeSampling, TradingEnv
from tests.unit.env_support import SESSION, black_scholes, hand_config, hand_episodes, spy_quote

START = 100                       # first decision row: 11:11 ET, 289 minutes before the close
COMMISSION = 0.65
CONTRACTS = 10
ENTRIES = [Action.BUY_CALL, Action.BUY_PUT]
REDUCING = [Action.TRIM_50, Action.TRIM_70, Action.EXIT]


def make_env(closes: list[float], start_row: int = START, **overrides: object) -> TradingEnv:
    env = TradingEnv(hand_episodes(closes), hand_config(start_row, **overrides))
    env.reset(seed=0)
    return env


def row_of(env: TradingEnv) -> int:
    return int(env.state.session_rows()[0])


def minutes_left(row: int) -> float:
    return 389.0 - row


def allowed(env: TradingEnv) -> set[Action]:
    return {Action(i) for i in np.flatnonzero(env.action_masks())}


def hold(env: TradingEnv, steps: int) -> None:
    for _ in range(steps):
        env.step(Action.HOLD)


# -- masks -------------------------------------------------------------------------------------


def test_trim_and_exit_are_masked_while_flat() -> None:
    env = make_env([500.0])
    assert allowed(env) == {Action.HOLD, Action.BUY_CALL, Action.BUY_PUT}


def test_buy_is_masked_while_a_position_is_open() -> None:
    env = make_env([500.0])
    env.step(Action.BUY_PUT)
    assert allowed(env) == {Action.HOLD, Action.TRIM_50, Action.TRIM_70, Action.EXIT}


def test_no_new_entry_from_the_entry_cutoff_on() -> None:
    env = make_env([500.0], start_row=357)          # 15:28 ET: 32 minutes to the close
    assert Action.BUY_CALL in allowed(env)
    env.step(Action.HOLD)                             # 15:29
    assert Action.BUY_CALL in allowed(env)
    env.step(Action.HOLD)                             # 15:30: the cutoff minute is already refused
    assert env.state.tape.minutes_to_close[env.state.row[0]] == 30
    assert allowed(env) == {Action.HOLD}


def test_entries_are_masked_during_the_cooldown_after_a_stop_out() -> None:
    closes = [500.0] * (START + 1) + [499.0, 498.0]
    env = make_env(closes)
    env.step(Action.BUY_CALL)                         # stop decided on row 101, filled on row 102
    assert env.state.held[0] == 0 and env.state.exit_was_stop[0]
    for row in range(START + 1, 112):
        assert row_of(env) == row
        assert allowed(env) == {Action.HOLD}, row
        env.step(Action.HOLD)
    assert row_of(env) == 112                    # 10 minutes after the 102 fill
    assert Action.BUY_CALL in allowed(env)


def test_entries_are_masked_for_two_minutes_after_a_normal_exit() -> None:
    env = make_env([500.0])
    env.step(Action.BUY_CALL)
    env.step(Action.EXIT)                             # sold on row 101
    assert allowed(env) == {Action.HOLD}              # row 102: 1 minute after
    env.step(Action.HOLD)
    assert Action.BUY_PUT in allowed(env)             # row 103: 2 minutes after


def test_entries_are_masked_past_the_trades_per_day_cap() -> None:
    env = make_env([500.0], risk=RiskConfig(max_trades_per_day=2, max_daily_loss=1e9))
    for _ in range(2):
        env.step(Action.BUY_CALL)
        env.step(Action.EXIT)
        hold(env, 2)
    assert env.state.trades_today[0] == 2
    assert allowed(env) == {Action.HOLD}
    hold(env, 30)
    assert allowed(env) == {Action.HOLD}


def test_entries_are_masked_past_the_daily_loss_limit() -> None:
    env = make_env([500.0], risk=RiskConfig(max_daily_loss=10.0))
    env.step(Action.BUY_CALL)
    env.step(Action.EXIT)                             # spread + commission lose more than $10
    assert env.state.pnl_today[0] < -10.0
    hold(env, 5)
    assert allowed(env) == {Action.HOLD}


def test_a_masked_action_is_played_as_hold_and_flagged() -> None:
    env = make_env([500.0], reward=SEED_REWARD_CONFIG)
    _, reward, _, _, info = env.step(Action.EXIT)     # nothing to exit
    assert info["action_replaced"] is True
    assert env.state.held[0] == 0
    assert reward == pytest.approx(SEED_REWARD_CONFIG.hold_tax)


def test_holding_through_a_cooldown_is_neither_taxed_nor_penalised() -> None:
    env = make_env([500.0], step_reward_terms=True, reward=SEED_REWARD_CONFIG)
    env.step(Action.BUY_CALL)
    env.step(Action.EXIT)
    assert allowed(env) == {Action.HOLD}             # the 2-minute cooldown after an exit
    _, reward, _, _, info = env.step(Action.HOLD)
    assert info["reward_terms"]["hold_tax"] == 0.0 and info["reward_terms"]["missed_opportunity"] == 0.0
    assert reward == 0.0
    hold(env, 1)
    assert Action.BUY_CALL in allowed(env)
    _, reward, _, _, info = env.step(Action.HOLD)    # a real choice again: taxed
    assert reward == pytest.approx(SEED_REWARD_CONFIG.hold_tax)


def test_default_reward_of_a_round_trip_adds_up_to_its_dollars_per_thousand() -> None:
    env = make_env([500.0], step_reward_terms=True)
    _, entry_reward, _, _, entry_info = env.step(Action.BUY_CALL)
    _, exit_reward, _, _, exit_info = env.step(Action.EXIT)
    dollars = env.state.pnl_today[0]
    assert dollars < 0
    assert entry_info["reward_terms"]["mark_to_market"] < 0          # the spread is paid at once
    assert entry_info["reward_terms"]["pnl"] == 0.0
    assert exit_info["reward_terms"]["pnl"] == pytest.approx(dollars / 1000.0, abs=1e-12)
    assert entry_reward + exit_reward == pytest.approx(dollars / 1000.0, abs=1e-12)


# -- fills, stop, take-profit, flatten -----------------------------------------------------------


def test_entry_fills_at_the_ask_of_the_atm_strike_at_black_scholes_value() -> None:
    env = make_env([500.4])
    env.step(Action.BUY_PUT)
    state = env.state
    assert state.strike[0] == 500.0                   # nearest $1 strike, fixed from now on
    _, ask = spy_quote(500.4, 500.0, minutes_left(START), call=False)
    assert state.entry_price[0] == pytest.approx(ask, abs=1e-12)
    assert state.side[0] == -1 and state.held[0] == CONTRACTS


def test_reference_black_scholes_matches_the_textbook_value() -> None:
    # S = K = 100, one year (98,280 trading minutes), vol 20%, r = 0: call 7.9656, put the same.
    assert black_scholes(100, 100, 98_280, 0.2, call=True) == pytest.approx(7.965567, abs=1e-6)
    assert black_scholes(100, 100, 98_280, 0.2, call=False) == pytest.approx(7.965567, abs=1e-6)


def test_default_premium_model_prices_the_entry_like_the_scalar_quote_used_by_execution() -> None:
    rng = np.random.default_rng(5)
    closes = list(500.0 * np.exp(np.cumsum(rng.normal(0, 0.0005, 200))))
    env = TradingEnv(hand_episodes(closes), EnvConfig(sampling=EpisodeSampling(start_row=150, min_steps=1)))
    env.reset(seed=0)
    env.step(Action.BUY_CALL)
    vol = robust_ewma_vol(closes[:151])[0][-1]        # the session's returns so far, from the prior
    _, _, ask = quote("SPY", closes[150], round(closes[150]), "call", minutes_left(150), vol, 151.0)
    assert env.state.entry_price[0] == pytest.approx(float(ask), abs=1e-12)


def test_round_trip_pays_the_spread_and_commission_on_both_fills() -> None:
    env = make_env([500.0], reward=SEED_REWARD_CONFIG)
    env.step(Action.BUY_CALL)
    _, reward, _, _, info = env.step(Action.EXIT)
    _, ask = spy_quote(500.0, 500.0, minutes_left(START))
    bid, _ = spy_quote(500.0, 500.0, minutes_left(START + 1))
    dollars = (bid - ask) * CONTRACTS * 100 - 2 * COMMISSION * CONTRACTS
    assert env.state.pnl_today[0] == pytest.approx(dollars, abs=1e-9)
    assert dollars < 0
    assert info.get("reward_terms") is None           # per-step terms are off by default
    assert reward == pytest.approx(dollars / (ask * CONTRACTS * 100), abs=1e-12)


def test_stop_fires_at_minus_15_percent_and_fills_at_the_next_bars_bid() -> None:
    closes = [500.0] * (START + 1) + [499.0, 498.0]
    env = make_env(closes, step_reward_terms=True, reward=SEED_REWARD_CONFIG)
    _, reward, _, _, info = env.step(Action.BUY_CALL)
    _, ask = spy_quote(500.0, 500.0, minutes_left(START))
    trigger_bid, _ = spy_quote(499.0, 500.0, minutes_left(START + 1))
    fill_bid, _ = spy_quote(498.0, 500.0, minutes_left(START + 2))
    assert trigger_bid / ask - 1 <= -0.15
    realised = (fill_bid - ask) * CONTRACTS * 100 - 2 * COMMISSION * CONTRACTS
    assert env.state.pnl_today[0] == pytest.approx(realised, abs=1e-9)
    assert realised < (trigger_bid - ask) * CONTRACTS * 100 - 2 * COMMISSION * CONTRACTS   # the gap hurts
    terms = info["reward_terms"]
    assert terms["stop_loss"] == pytest.approx(-0.10)
    assert terms["pnl"] == pytest.approx(realised / (ask * CONTRACTS * 100), abs=1e-12)
    assert reward == pytest.approx(sum(terms[name] for name in REWARD_TERMS), abs=1e-12)


def test_stop_does_not_fire_at_a_loss_just_under_15_percent() -> None:
    _, ask = spy_quote(500.0, 500.0, minutes_left(START))
    spot = _spot_where(lambda bid: -0.15 < bid / ask - 1 < -0.12, START + 1, falling=True)
    env = make_env([500.0] * (START + 1) + [spot])
    env.step(Action.BUY_CALL)
    assert env.state.held[0] == CONTRACTS and not env.state.exit_was_stop[0]


def _spot_where(ok, row: int, *, falling: bool = False) -> float:  # type: ignore[no-untyped-def]
    """The first underlying price (cent steps away from 500) whose call bid at ``row`` satisfies ``ok``."""
    for cents in range(1, 2000):
        spot = 500.0 + (-cents if falling else cents) / 100
        bid, _ = spy_quote(spot, 500.0, minutes_left(row))
        if ok(bid):
            return spot
    raise AssertionError("no price found")


def test_take_profit_tiers_trim_in_order_at_the_bid() -> None:
    _, ask = spy_quote(500.0, 500.0, minutes_left(START))
    tp1_spot = _spot_where(lambda bid: 1.20 <= bid / ask < 1.50, START + 1)
    jump_spot = _spot_where(lambda bid: bid / ask >= 2.0, START + 2)
    env = make_env([500.0] * (START + 1) + [tp1_spot, jump_spot], reward=SEED_REWARD_CONFIG)
    env.step(Action.BUY_CALL)
    bid1, _ = spy_quote(tp1_spot, 500.0, minutes_left(START + 1))
    assert env.state.held[0] == 5 and env.state.tiers_hit[0] == 1          # TP1: half of 10
    first = 5 * (bid1 - ask) * 100 - 2 * COMMISSION * 5
    assert env.state.pnl_today[0] == pytest.approx(first, abs=1e-9)
    _, reward, _, _, _ = env.step(Action.HOLD)
    bid2, _ = spy_quote(jump_spot, 500.0, minutes_left(START + 2))
    assert env.state.held[0] == 0 and env.state.tiers_hit[0] == 3          # TP2 sells 4 (70% of 5), TP3 the last
    second = 5 * (bid2 - ask) * 100 - 2 * COMMISSION * 5
    assert env.state.pnl_today[0] == pytest.approx(first + second, abs=1e-9)
    assert 2.0 <= bid2 / ask < 3.0                    # realised gain in [+100%, +200%): scalp tier 0.12
    scalp_bonus = 0.12 * 5 / CONTRACTS                # ... times the half of the position closed
    assert reward == pytest.approx(second / (ask * CONTRACTS * 100) + scalp_bonus, abs=1e-9)


def test_trim_50_and_trim_70_sell_rounded_half_up_at_the_bid() -> None:
    env = make_env([500.0])
    env.step(Action.BUY_CALL)
    env.step(Action.TRIM_50)
    assert env.state.held[0] == 5
    env.step(Action.TRIM_70)                          # 3.5 rounds up to 4
    assert env.state.held[0] == 1
    env.step(Action.TRIM_50)                          # a trim of one contract closes it
    assert env.state.held[0] == 0 and env.state.side[0] == 0


def test_position_is_flattened_and_the_episode_ends_five_minutes_before_the_close() -> None:
    # a flat market bleeds theta: a wide stop keeps the position until the flatten window
    env = make_env([500.0], step_reward_terms=True, risk=RiskConfig(stop_loss_pct=0.95))
    env.step(Action.BUY_CALL)
    steps, terminated, info = 1, False, {}
    while not terminated:
        _, _, terminated, truncated, info = env.step(Action.HOLD)
        steps += 1
        assert not truncated
    assert row_of(env) == 384 and minutes_left(384) == 5          # 15:55 ET
    assert steps == 384 - START
    _, ask = spy_quote(500.0, 500.0, minutes_left(START))
    bid, _ = spy_quote(500.0, 500.0, 5.0)
    dollars = (bid - ask) * CONTRACTS * 100 - 2 * COMMISSION * CONTRACTS
    assert env.state.held[0] == 0
    assert info["episode_pnl"] == pytest.approx(dollars, abs=1e-9)
    assert info["episode_trades"] == 1
    assert info["episode"]["l"] == steps
    assert sum(info["episode_reward_terms"].values()) == pytest.approx(info["episode"]["r"], abs=1e-9)
    assert info["episode"]["r"] == pytest.approx(dollars / 1000.0, abs=1e-9)   # default preset: the dollars


def test_observation_carries_the_position_on_every_row() -> None:
    env = make_env([500.0] * (START + 1) + [500.5])
    obs, *_ = env.step(Action.BUY_PUT)
    _, ask = spy_quote(500.0, 500.0, minutes_left(START), call=False)
    bid, _ = spy_quote(500.5, 500.0, minutes_left(START + 1), call=False)
    assert obs.shape == (20, 23) and obs.dtype == np.float32
    assert np.all(obs[:, 21] == -1.0)
    assert np.allclose(obs[:, 22], bid / ask - 1, atol=1e-7)


# -- training episodes carry decisions ----------------------------------------------------------


def test_a_training_episode_ends_once_flat_at_the_daily_loss_limit() -> None:
    env = make_env([500.0], risk=RiskConfig(max_daily_loss=10.0), end_when_no_decision_left=True)
    env.step(Action.BUY_CALL)
    _, _, terminated, _, info = env.step(Action.EXIT)  # the round trip loses more than $10
    assert terminated and info["episode_pnl"] < -10.0


def test_a_training_episode_ends_once_flat_at_the_trade_cap_but_not_while_a_position_is_open() -> None:
    env = make_env([500.0], risk=RiskConfig(max_trades_per_day=1, max_daily_loss=1e9),
                   end_when_no_decision_left=True)
    _, _, terminated, _, _ = env.step(Action.BUY_CALL)  # the cap is reached, but the position still decides
    assert not terminated
    _, _, terminated, _, _ = env.step(Action.EXIT)
    assert terminated


def test_a_training_episode_ends_at_the_entry_cutoff_when_flat() -> None:
    cutoff_row = SESSION - 1 - int(RiskConfig().entry_cutoff_minutes)  # minutes_to_close == cutoff
    env = make_env([500.0], start_row=cutoff_row - 2, end_when_no_decision_left=True)
    _, _, first, _, _ = env.step(Action.HOLD)
    _, _, second, _, _ = env.step(Action.HOLD)
    assert not first and second


def test_without_the_shortcut_the_day_runs_on_with_hold_as_the_only_action() -> None:
    env = make_env([500.0], risk=RiskConfig(max_daily_loss=10.0))
    env.step(Action.BUY_CALL)
    _, _, terminated, _, _ = env.step(Action.EXIT)
    assert not terminated and allowed(env) == {Action.HOLD}


def test_a_cooldown_is_skipped_in_training_to_the_next_minute_with_a_decision() -> None:
    env = make_env([500.0], skip_minutes_without_decision=True)
    env.step(Action.BUY_CALL)
    before_exit = row_of(env)
    env.step(Action.EXIT)                        # a 2-minute cooldown after an exit
    assert allowed(env) >= {Action.BUY_CALL, Action.BUY_PUT}
    assert row_of(env) == before_exit + int(RiskConfig().cooldown_after_exit_minutes)  # not before_exit + 1
