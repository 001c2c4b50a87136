"""The evaluation engine on the synthetic market: every symbol-day once, deterministic, the
baselines' defining behaviour, fills that add up to the env's P&L, and walk-forward folds."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from scalper_shared.core.edge import MOMENTUM_EDGE, edge_rule_side
from scalper_shared.core.features.spec import MARKET_INDEX
from scalper_shared.core.policy_net import NumpyPolicy
from scalper_shared.schema.training import TrainConfig
from scalper_trainer.env import EnvConfig, EpisodeSet, MarketTape, synthetic_episodes
from scalper_trainer.evaluation import (
    AgentPolicy,
    HoldPolicy,
    MomentumRulePolicy,
    RandomMaskedPolicy,
    evaluate,
    evaluate_walk_forward,
    walk_forward_folds,
)
from scalper_trainer.evaluation.policies import (
    EdgeRulePolicy,
    NoSetupPolicy,
    SetupTimedExitPolicy,
    baseline_policies,
)

CONFIG = EnvConfig()


@pytest.fixture(scope="module")
def episodes() -> EpisodeSet:
    return synthetic_episodes(date(2025, 7, 7), date(2025, 7, 11), seed=4, symbols=("SPY", "QQQ"))


@pytest.fixture(scope="module")
def tape(episodes: EpisodeSet) -> MarketTape:
    return MarketTape(episodes, CONFIG)


def small_network(seed: int) -> NumpyPolicy:
    rng = np.random.default_rng(seed)
    return NumpyPolicy(hidden=((rng.normal(0, 0.05, (460, 16)), np.zeros(16)),),
                       head=(rng.normal(0, 1.0, (16, 6)), np.zeros(6)))


def test_every_symbol_day_is_played_exactly_once(tape: MarketTape, episodes: EpisodeSet) -> None:
    result = evaluate(HoldPolicy(), tape, CONFIG)
    pairs = list(zip(result.symbols, result.days, strict=True))
    assert len(pairs) == len(set(pairs)) == episodes.n_episodes == 10
    assert sorted(pairs, key=lambda p: (p[1], p[0])) == pairs
    assert result.steps == int((tape.end_row - tape.start_row).sum())


def test_hold_baseline_never_trades(tape: MarketTape) -> None:
    result = evaluate(HoldPolicy(), tape, CONFIG)
    assert result.trades == [] and result.fills == []
    assert result.episode_pnl.tolist() == [0.0] * result.n_episodes


def test_random_baseline_is_deterministic_for_a_seed_and_changes_with_it(tape: MarketTape) -> None:
    first = evaluate(RandomMaskedPolicy(), tape, CONFIG, seed=1)
    again = evaluate(RandomMaskedPolicy(), tape, CONFIG, seed=1)
    other = evaluate(RandomMaskedPolicy(), tape, CONFIG, seed=2)
    assert first.trades == again.trades and first.episode_pnl.tolist() == again.episode_pnl.tolist()
    assert first.trades != other.trades
    assert len(first.trades) > 20


def test_trade_pnl_adds_up_to_the_env_day_pnl_and_every_position_closes(tape: MarketTape) -> None:
    result = evaluate(RandomMaskedPolicy(), tape, CONFIG, seed=5)
    assert sum(t.pnl for t in result.trades) == pytest.approx(float(result.episode_pnl.sum()))
    assert sum(result.episode_trades) == len(result.trades)
    reasons = {t.exit_reason for t in result.trades}
    assert reasons <= {"agent", "stop", "tp1", "tp2", "tp3", "end_of_day"} and "agent" in reasons
    for fill in result.fills:
        assert fill.contracts > 0 and fill.price >= 0


def test_momentum_rule_enters_only_on_the_strong_setup_side_and_exits_through_risk_only(tape: MarketTape) -> None:
    result = evaluate(MomentumRulePolicy(), tape, CONFIG)
    assert result.trades, "the synthetic week should have strong setups"
    index = {(s, d): e for e, (s, d) in enumerate(zip(tape.episodes.symbols, tape.episodes.days, strict=True))}
    for trade in result.trades:
        episode = index[(trade.symbol, trade.day)]
        assert tape.setup[tape.first_row[episode] + trade.entry_row] == trade.side
        assert trade.exit_reason != "agent"


def _entry_rows(tape: MarketTape, trades: list) -> list[int]:  # type: ignore[type-arg]
    index = {(s, d): e for e, (s, d) in enumerate(zip(tape.episodes.symbols, tape.episodes.days, strict=True))}
    return [int(tape.first_row[index[(t.symbol, t.day)]] + t.entry_row) for t in trades]


def test_setup_timed_exit_buys_setups_and_exits_after_its_minutes(tape: MarketTape) -> None:
    result = evaluate(SetupTimedExitPolicy(5), tape, CONFIG)
    assert result.policy == "setup_exit_5m" and result.trades
    for trade, row in zip(result.trades, _entry_rows(tape, result.trades), strict=True):
        assert tape.setup[row] == trade.side
        held = trade.exit_row - trade.entry_row
        assert held == 5 if trade.exit_reason == "agent" else held <= 6   # a stop fills a bar after its trigger


def test_no_setup_policy_never_buys_a_setup(tape: MarketTape) -> None:
    result = evaluate(NoSetupPolicy(), tape, CONFIG, seed=3)
    assert len(result.trades) > 20
    assert all(tape.setup[row] == 0 for row in _entry_rows(tape, result.trades))
    assert {t.side for t in result.trades} == {-1, 1}


def test_edge_rule_enters_after_large_five_minute_moves_only() -> None:
    episodes = synthetic_episodes(date(2025, 7, 1), date(2025, 7, 31), seed=0, symbols=("SPY", "QQQ"),
                                  edge="momentum")
    tape = MarketTape(episodes, CONFIG)
    result = evaluate(EdgeRulePolicy(), tape, CONFIG)
    assert result.trades
    for trade, row in zip(result.trades, _entry_rows(tape, result.trades), strict=True):
        features = tape.features[row]
        assert edge_rule_side(features[MARKET_INDEX["ret_5"]], features[MARKET_INDEX["atr_pct"]]) == trade.side
        if trade.exit_reason == "agent":
            assert trade.exit_row - trade.entry_row == MOMENTUM_EDGE.rule_hold_minutes


def test_the_edge_rule_is_a_baseline_only_where_the_market_has_an_edge() -> None:
    assert [p.name for p in baseline_policies()] == ["hold", "random", "momentum_rule"]
    assert [p.name for p in baseline_policies("momentum")] == ["hold", "random", "momentum_rule", "edge_rule"]


def test_the_agent_is_deterministic_and_reports_its_entropy(tape: MarketTape) -> None:
    agent = AgentPolicy(small_network(0))
    first = evaluate(agent, tape, CONFIG, seed=0, keep_states=True)
    again = evaluate(agent, tape, CONFIG, seed=99)
    assert first.trades == again.trades
    assert first.entropies is not None and first.entropies.size == first.steps
    assert np.all(first.entropies >= 0) and np.all(first.entropies <= np.log(6) + 1e-9)
    assert first.states is not None and first.states[0].shape[1:] == (20, 23)


def test_walk_forward_folds_tile_the_range_and_test_after_training() -> None:
    folds = walk_forward_folds(date(2025, 7, 1), date(2025, 7, 31), train_days=10, test_days=5)
    assert [(f.train_from, f.train_to, f.test_from, f.test_to) for f in folds[:2]] == [
        (date(2025, 7, 1), date(2025, 7, 15), date(2025, 7, 16), date(2025, 7, 22)),
        (date(2025, 7, 9), date(2025, 7, 22), date(2025, 7, 23), date(2025, 7, 29))]
    assert len(folds) == 2          # 22 sessions: 10 + 5 + 5, the last 2 days are no full test window
    base = TrainConfig(train_from=date(2025, 1, 1), train_to=date(2025, 1, 2), validation_from=date(2025, 1, 3),
                       validation_to=date(2025, 1, 4))
    fold_config = folds[1].train_config(base)
    assert (fold_config.train_from, fold_config.validation_to) == (date(2025, 7, 9), date(2025, 7, 29))


def test_walk_forward_evaluates_each_fold_policy_on_its_test_window_only() -> None:
    folds = walk_forward_folds(date(2025, 7, 7), date(2025, 7, 11), train_days=2, test_days=1)
    seen: list[tuple[date, date]] = []

    def episodes_for(start: date, end: date) -> EpisodeSet:
        seen.append((start, end))
        return synthetic_episodes(start, end, seed=4, symbols=("SPY",))

    out = evaluate_walk_forward(folds, [HoldPolicy()] * len(folds), episodes_for, CONFIG)
    assert seen == [(f.test_from, f.test_to) for f in folds] and len(folds) == 3
    assert [f["test"] for f in out["folds"]] == [[str(f.test_from), str(f.test_to)] for f in folds]
    assert out["out_of_sample"]["total_pnl"] == 0.0


def test_every_trade_splits_its_pnl_into_gross_spread_and_fees(tape: MarketTape) -> None:
    result = evaluate(RandomMaskedPolicy(), tape, CONFIG, seed=3)
    assert len(result.trades) > 20
    premium = CONFIG.premium
    for trade in result.trades:
        assert trade.pnl == pytest.approx(trade.gross - trade.spread_paid - trade.fees, abs=1e-6)
        assert trade.spread_paid > 0 and trade.fees == pytest.approx(2 * trade.contracts * premium.commission_per_contract)
        assert sum(e.contracts for e in trade.exits) == trade.contracts == CONFIG.contracts
        assert trade.exits[-1].reason == trade.exit_reason and trade.exits[-1].row == trade.exit_row
        assert trade.strike > 0 and 0 < trade.entry_minute <= trade.exit_minute <= 390
        session = result.sessions[(trade.symbol, trade.day)]
        assert session.close.size == session.minute.size and session.minute[trade.entry_row] == trade.entry_minute
