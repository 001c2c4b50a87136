from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from scalper_shared.core.actions import Action
from scalper_shared.core.rewards import (
    DEFAULT_REWARD_CONFIG,
    REWARD_TERMS,
    SEED_REWARD_CONFIG,
    RewardConfig,
    position_value,
    reward_terms,
    total_reward,
)

NAN = np.nan
SEED = SEED_REWARD_CONFIG


def seed_terms(**kwargs: object) -> dict[str, np.ndarray]:
    """The seed preset's terms with an entry allowed unless the test says otherwise."""
    return reward_terms(**{"entry_allowed": True, "config": SEED, **kwargs})  # type: ignore[arg-type]


def _only(terms: dict[str, np.ndarray], **expected: float) -> None:
    """Every term is 0 except the ``expected`` ones; the total is their sum."""
    for name in REWARD_TERMS:
        assert terms[name] == pytest.approx([expected.get(name, 0.0)]), name
    assert terms["total"] == pytest.approx([sum(expected.values())])


def test_seed_preset_equals_the_published_weights() -> None:
    c = SEED_REWARD_CONFIG
    assert (c.good_buy_call_bonus, c.good_buy_put_bonus) == (0.12, 0.10)
    assert (c.missed_opportunity_penalty, c.bad_chase_penalty, c.hold_tax) == (-0.06, -0.03, -0.0005)
    assert c.stop_loss_penalty == -0.10
    assert c.scalp_tiers == ((0.20, 0.02), (0.30, 0.04), (0.50, 0.06), (0.70, 0.08), (1.00, 0.12), (2.00, 0.20))
    assert (c.pnl_weight, c.pnl_scale, c.mark_to_market_weight, c.chase_threshold_atr) == (1.0, "entry_cost", 0.0, 2.0)


def test_default_preset_pays_after_cost_dollars_and_their_mark_to_market_only() -> None:
    c = DEFAULT_REWARD_CONFIG
    assert (c.pnl_weight, c.pnl_scale, c.dollars_per_unit, c.mark_to_market_weight) == (1.0, "dollars", 1000.0, 1.0)
    assert c.scalp_tiers == ()
    assert (c.good_buy_call_bonus, c.good_buy_put_bonus, c.missed_opportunity_penalty, c.bad_chase_penalty,
            c.hold_tax, c.stop_loss_penalty) == (0.0,) * 6


def test_hold_while_flat_pays_the_hold_tax() -> None:
    _only(seed_terms(action=Action.HOLD, was_flat=True), hold_tax=-0.0005)


def test_hold_while_in_a_position_is_free() -> None:
    _only(seed_terms(action=Action.HOLD, was_flat=False))


def test_missed_opportunity_when_holding_flat_through_a_strong_setup() -> None:
    _only(seed_terms(action=Action.HOLD, was_flat=True, strong_put_setup=True),
          missed_opportunity=-0.06, hold_tax=-0.0005)


def test_good_buy_bonus_for_calls_and_puts_on_their_setup() -> None:
    _only(seed_terms(action=Action.BUY_CALL, was_flat=True, strong_call_setup=True), good_buy=0.12)
    _only(seed_terms(action=Action.BUY_PUT, was_flat=True, strong_put_setup=True), good_buy=0.10)
    _only(seed_terms(action=Action.BUY_CALL, was_flat=True, strong_put_setup=True))


def test_bad_chase_when_entering_an_extended_move_in_its_direction() -> None:
    _only(seed_terms(action=Action.BUY_CALL, was_flat=True, extension_atr=2.0), bad_chase=-0.03)
    _only(seed_terms(action=Action.BUY_PUT, was_flat=True, extension_atr=-2.5), bad_chase=-0.03)
    _only(seed_terms(action=Action.BUY_CALL, was_flat=True, extension_atr=1.99))
    _only(seed_terms(action=Action.BUY_PUT, was_flat=True, extension_atr=2.5))


def test_realised_pnl_is_net_of_spread_and_commission_over_entry_cost() -> None:
    # 10 contracts in at the 2.00 ask, out at the 2.30 bid: 300 - 13 commission = 287 over 2000
    terms = seed_terms(action=Action.EXIT, was_flat=False, closed_contracts=10, entry_price=2.00,
                         exit_price=2.30, entry_contracts=10)
    _only(terms, pnl=287.0 / 2000.0, scalp_tier=0.0)


def test_scalp_tier_pays_the_highest_tier_reached_times_the_fraction_closed() -> None:
    terms = seed_terms(action=[Action.TRIM_50] * 4 + [Action.EXIT] * 2, was_flat=False,
                         closed_contracts=[5, 5, 5, 5, 10, 10], entry_price=2.00,
                         exit_price=[2.38, 2.40, 2.60, 3.00, 6.00, 7.00], entry_contracts=10)
    assert terms["scalp_tier"] == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.20, 0.20])


def test_stop_out_pays_the_stop_penalty_and_the_gap_loss() -> None:
    # stop fired at -15% and filled at the next bar's 1.40 bid: (1.40 - 2.00) * 1000 - 13 = -613
    terms = seed_terms(action=Action.HOLD, was_flat=False, closed_contracts=10, entry_price=2.00,
                         exit_price=1.40, entry_contracts=10, stop_fired=True)
    _only(terms, pnl=-613.0 / 2000.0, stop_loss=-0.10)


def test_trim_pnl_terms_add_up_to_the_position_return() -> None:
    trim = seed_terms(action=Action.TRIM_50, was_flat=False, closed_contracts=5, entry_price=2.0,
                        exit_price=2.5, entry_contracts=10)
    exit_ = seed_terms(action=Action.EXIT, was_flat=False, closed_contracts=5, entry_price=2.0,
                         exit_price=1.9, entry_contracts=10)
    whole = (0.5 * 500 + (-0.1) * 500 - 10 * 2 * 0.65) / 2000
    assert trim["pnl"][0] + exit_["pnl"][0] == pytest.approx(whole)


def test_terms_are_vectorised_over_environments() -> None:
    terms = seed_terms(action=[Action.HOLD, Action.BUY_CALL, Action.EXIT, Action.HOLD],
                         was_flat=[True, True, False, False], strong_call_setup=[True, True, False, False],
                         extension_atr=[0.0, 3.0, 0.0, 0.0], closed_contracts=[0, 0, 2, 0],
                         entry_price=[NAN, NAN, 1.0, NAN], exit_price=[NAN, NAN, 0.8, NAN],
                         entry_contracts=[1, 1, 2, 1], stop_fired=[False, False, True, False])
    assert set(terms) == {*REWARD_TERMS, "total"}
    assert all(v.shape == (4,) for v in terms.values())
    expected_pnl = (-0.2 * 200 - 2 * 2 * 0.65) / 200
    assert terms["total"] == pytest.approx([-0.0605, 0.12 - 0.03, expected_pnl - 0.10, 0.0])
    assert total_reward(action=Action.HOLD, was_flat=True, entry_allowed=True, config=SEED) == pytest.approx([-0.0005])


def test_reward_config_is_frozen_and_validated() -> None:
    with pytest.raises(ValidationError):
        SEED_REWARD_CONFIG.hold_tax = 0.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="ascending"):
        RewardConfig(scalp_tiers=((0.5, 0.1), (0.2, 0.05)))
    custom = RewardConfig(hold_tax=-0.001, pnl_weight=2.0)
    _only(seed_terms(action=Action.HOLD, was_flat=True, config=custom), hold_tax=-0.001)
    with pytest.raises(ValidationError):
        RewardConfig(pnl_scale="percent")  # type: ignore[arg-type]


def test_hold_tax_and_missed_opportunity_are_zero_where_entry_is_blocked() -> None:
    blocked = seed_terms(action=[Action.HOLD] * 2, was_flat=True, entry_allowed=False,
                         strong_call_setup=[True, False])
    assert blocked["hold_tax"] == pytest.approx([0.0, 0.0])
    assert blocked["missed_opportunity"] == pytest.approx([0.0, 0.0])
    assert blocked["total"] == pytest.approx([0.0, 0.0])
    mixed = seed_terms(action=[Action.HOLD] * 4, was_flat=True, entry_allowed=[True, False, True, False],
                       strong_put_setup=[True, True, False, False])
    assert mixed["missed_opportunity"] == pytest.approx([-0.06, 0.0, 0.0, 0.0])
    assert mixed["hold_tax"] == pytest.approx([-0.0005, 0.0, -0.0005, 0.0])


def test_default_pnl_is_dollars_per_thousand() -> None:
    terms = reward_terms(action=Action.EXIT, was_flat=False, entry_allowed=False, closed_contracts=10,
                         entry_price=2.00, exit_price=2.30, entry_contracts=10)
    assert terms["pnl"] == pytest.approx([287.0 / 1000.0])
    assert terms["total"] == pytest.approx([0.287])


def test_mark_to_market_terms_of_a_position_add_up_to_zero_and_the_episode_to_its_dollars() -> None:
    # bought 10 at the 2.00 ask (bid 1.95), marked 2.10, 1.80, trimmed 5 at 2.20, rest exited at 2.05
    values = [0.0, position_value(2.0, 1.95, 10)[0], position_value(2.0, 2.10, 10)[0],
              position_value(2.0, 1.80, 10)[0], position_value(2.0, 2.20, 5)[0], 0.0]
    changes = np.diff(values)
    closed = [0, 0, 0, 5, 5]
    exits = [NAN, NAN, NAN, 2.20, 2.05]
    terms = reward_terms(action=[Action.BUY_CALL, Action.HOLD, Action.HOLD, Action.TRIM_50, Action.EXIT],
                         was_flat=[True, False, False, False, False], entry_allowed=[True, False, False, False, False],
                         closed_contracts=closed, entry_price=2.0, exit_price=exits, entry_contracts=10,
                         position_value_change=changes)
    dollars = (2.20 - 2.0) * 500 + (2.05 - 2.0) * 500 - 10 * 2 * 0.65
    assert terms["mark_to_market"].sum() == pytest.approx(0.0, abs=1e-12)
    assert terms["total"].sum() == pytest.approx(dollars / 1000.0)
    assert terms["mark_to_market"][0] == pytest.approx((-0.05 * 1000 - 13.0) / 1000.0)
    assert position_value([2.0, 2.0], [2.5, 9.0], [0, 2])[0] == 0.0


def test_the_presets_carry_the_named_reward_configs() -> None:
    from scalper_shared.schema.presets import PRESETS

    assert PRESETS["seed"].reward == SEED_REWARD_CONFIG and PRESETS["seed"].ppo.ent_coef == 0.08
    assert PRESETS["default"].reward == DEFAULT_REWARD_CONFIG
