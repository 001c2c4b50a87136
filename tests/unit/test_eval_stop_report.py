"""The evaluation reports how far past the -15% line stop fills went, and why (hand-made sessions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from scalper_shared.core.actions import Action
from scalper_trainer.evaluation import evaluate
from scalper_trainer.evaluation.metrics import stop_loss_reliability, stop_overshoot
from tests.unit.env_support import hand_config, hand_episodes, spy_quote

START = 100


@dataclass(frozen=True)
class BuyCallOnce:
    name: str = "buy_call_once"

    def decide(self, observations: npt.NDArray[np.float32], masks: npt.NDArray[np.bool_], setup: npt.NDArray[np.int8],
               rng: np.random.Generator, held_minutes: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], None]:
        buy = masks[:, int(Action.BUY_CALL)] & (held_minutes < 0) if held_minutes.size else masks[:, 1]
        return np.where(buy, int(Action.BUY_CALL), int(Action.HOLD)).astype(np.int64), None


def stop_report(closes: list[float]) -> tuple[dict, float, float, float]:
    config = hand_config(START)
    result = evaluate(BuyCallOnce(), hand_episodes(closes), config)
    stops = [e for t in result.trades for e in t.exits if e.reason == "stop"]
    assert stops, result.trades
    entry = result.trades[0].entry_price
    assert "overshoot" in stop_loss_reliability(result.trades, result.fills, config)
    # the first trade only: the policy re-enters later and theta decay stops those out too
    return {"overshoot": stop_overshoot(result.trades[:1], -0.15)}, entry, stops[0].trigger_price, stops[0].price


def test_a_gap_on_the_bar_after_the_trigger_is_reported_as_next_bar_gap() -> None:
    # entry at 500 (11:11); 499 takes the bid just past -15%; 496 the next bar is the fill: a gap
    report, entry, trigger, fill = stop_report([500.0] * (START + 1) + [499.0, 496.0])
    _, ask = spy_quote(500.0, 500.0, 389 - START)
    trigger_bid, _ = spy_quote(499.0, 500.0, 389 - START - 1)
    fill_bid, _ = spy_quote(496.0, 500.0, 389 - START - 2)
    assert (entry, trigger, fill) == (pytest.approx(ask), pytest.approx(trigger_bid), pytest.approx(fill_bid))
    over = report["overshoot"]
    expected = -0.15 - (fill_bid / ask - 1)
    assert over["stops"] == 1 and over["beyond_line"] == 1
    assert over["overshoot"]["max"] == pytest.approx(expected)
    assert over["mean_next_bar"] == pytest.approx(trigger_bid / ask - fill_bid / ask)
    assert over["why"] == {"jump_through_the_line": 0, "next_bar_gap": 1, "recovered": 0}


def test_a_one_bar_jump_through_the_line_is_reported_as_such() -> None:
    # a 2.5-point drop in one bar takes the bid far past -15%; the next bar is flat
    report, entry, trigger, _ = stop_report([500.0] * (START + 1) + [497.5, 497.5])
    assert trigger / entry - 1 < -0.25
    assert report["overshoot"]["why"]["jump_through_the_line"] == 1
    assert report["overshoot"]["mean_at_trigger"] == pytest.approx(-0.15 - (trigger / entry - 1))


def test_a_stop_that_recovers_on_the_fill_bar_is_not_beyond_the_line() -> None:
    report, *_ = stop_report([500.0] * (START + 1) + [499.0, 500.5])
    assert report["overshoot"]["beyond_line"] == 0
    assert report["overshoot"]["why"]["recovered"] == 1
