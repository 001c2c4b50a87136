"""One account: the evaluation plays every symbol of a day under the account-wide rules execution
enforces (trades per account-day, daily loss latched as a halt, concurrent positions, contracts per
entry), with the one risk-and-sizing config saved with the model; execution refuses a model whose
config differs from its own unless told to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from scalper_execution.engine import (
    PREMIUM_CONFIG_MISMATCH,
    RISK_CONFIG_MISMATCH,
    ExecutionConfig,
    ExecutionEngine,
    ServedModel,
)
from scalper_policy.inference import load_served_model
from scalper_shared.clock import FakeClock
from scalper_shared.core.actions import Action
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.core.policy_net import NumpyPolicy
from scalper_shared.core.premium import DEFAULT_PREMIUM_CONFIG, PremiumModelConfig
from scalper_shared.core.ratelimit import RateLimit
from scalper_shared.core.risk import RiskConfig
from scalper_shared.schema.messages import OrderSide
from scalper_shared.schema.training import TrainConfig
from scalper_trainer.env import EnvConfig, EpisodeSet, MarketTape, TradingBatch, synthetic_episodes
from scalper_trainer.env.bundle import env_config_for
from scalper_trainer.env.core import ENTRY
from scalper_trainer.evaluation.engine import EvaluationResult, evaluate
from scalper_trainer.evaluation.run import ModelArtifact
from tests.unit.env_support import hand_config, hand_episodes
from tests.unit.execution_support import AFTER_THE_DAY, FakeMonotonic, bar, decision

BUY, EXIT = int(Action.BUY_CALL), int(Action.EXIT)


@dataclass(frozen=True)
class Churn:
    """Buys a call whenever an entry is allowed; exits after ``hold`` minutes. Many trades a day."""

    hold: int = 1
    name: str = "churn"

    def decide(self, observations: npt.NDArray[np.float32], masks: npt.NDArray[np.bool_],
               setup: npt.NDArray[np.int8], rng: np.random.Generator,
               held_minutes: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], None]:
        actions = np.where(masks[:, BUY], BUY, 0)
        actions = np.where((held_minutes >= self.hold) & masks[:, EXIT], EXIT, actions)
        return actions.astype(np.int64), None


@pytest.fixture(scope="module")
def episodes() -> EpisodeSet:
    return synthetic_episodes(date(2025, 7, 7), date(2025, 7, 11), seed=4, symbols=("SPY", "QQQ"))


def run(episodes: EpisodeSet, risk: RiskConfig, policy: Churn = Churn()) -> EvaluationResult:
    config = EnvConfig(risk=risk)
    return evaluate(policy, MarketTape(episodes, config), config)


def entries_by_day(result: EvaluationResult, tape_days: dict[int, date]) -> dict[date, int]:
    out: dict[date, int] = {}
    for fill in result.fills:
        if fill.reason == ENTRY:
            day = tape_days[fill.episode]
            out[day] = out.get(day, 0) + 1
    return out


def test_trades_per_day_are_counted_per_account_day_over_every_symbol(episodes: EpisodeSet) -> None:
    risk = RiskConfig(max_trades_per_day=6, max_daily_loss=1e9)
    result = run(episodes, risk)
    per_day = entries_by_day(result, dict(enumerate(episodes.days)))
    assert per_day and max(per_day.values()) == 6, per_day  # each symbol alone would take 6
    symbols_per_day = {(episodes.days[f.episode], episodes.symbols[f.episode]) for f in result.fills}
    assert len(symbols_per_day) > len(per_day), "both symbols trade within the shared cap"


def test_the_daily_loss_limit_halts_every_symbol_of_the_account(episodes: EpisodeSet) -> None:
    risk = RiskConfig(max_daily_loss=400.0, cooldown_after_stop_minutes=0, cooldown_after_exit_minutes=0)
    together = run(episodes, risk)
    first_row = MarketTape(episodes, EnvConfig(risk=risk)).first_row  # session rows: the same grid per day
    halted_days = 0
    for day in sorted(set(episodes.days)):
        fills = [f for f in together.fills if episodes.days[f.episode] == day]
        timeline = sorted(fills, key=lambda f: (f.row - first_row[f.episode], f.reason == ENTRY))
        realised, held, halted_at = 0.0, 0, None
        for fill in timeline:
            at = fill.row - first_row[fill.episode]
            if fill.reason == ENTRY:
                assert halted_at is None or at <= halted_at, f"{day}: an entry at row {at} after the halt at {halted_at}"
                held += fill.contracts
            else:
                held -= fill.contracts
                realised += fill.pnl
                if held == 0 and realised <= -risk.max_daily_loss and halted_at is None:
                    halted_at = at
        halted_days += halted_at is not None
    assert halted_days, "no day reached the limit: the test would not exercise the halt"
    alone = sum(len(run(one, risk).trades) for one in split_by_symbol(episodes))
    assert len(together.trades) < alone, "one account per symbol would have kept trading"


def split_by_symbol(episodes: EpisodeSet) -> list[EpisodeSet]:
    parts = []
    for symbol in sorted(set(episodes.symbols)):
        keep = [e for e in range(episodes.n_episodes) if episodes.symbols[e] == symbol]
        rows = np.concatenate([np.arange(episodes.offsets[e], episodes.offsets[e + 1]) for e in keep])
        lengths = [int(episodes.offsets[e + 1] - episodes.offsets[e]) for e in keep]
        parts.append(EpisodeSet(episodes.features[rows], episodes.close[rows], episodes.minutes_to_close[rows],
                                episodes.minute_of_day[rows], episodes.setup[rows],
                                np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                                tuple(episodes.symbols[e] for e in keep), tuple(episodes.days[e] for e in keep),
                                episodes.spec_hash))
    return parts


def test_concurrent_positions_are_limited_over_the_account(episodes: EpisodeSet) -> None:
    risk = RiskConfig(max_concurrent_positions=1, max_daily_loss=1e9, max_trades_per_day=400)
    result = run(episodes, risk, Churn(hold=5))
    assert {t.symbol for t in result.trades} == {"SPY", "QQQ"}
    for day in set(t.day for t in result.trades):
        spans = sorted((t.entry_row, t.exit_row) for t in result.trades if t.day == day)
        for (_, exit_row), (entry_row, _) in zip(spans, spans[1:], strict=False):
            assert entry_row >= exit_row, f"{day}: two positions open at once"


def test_entries_of_one_account_on_the_same_minute_are_taken_in_order_under_the_cap() -> None:
    config = hand_config(100, risk=RiskConfig(max_trades_per_day=1))
    tape = MarketTape(EpisodeSet.concat([hand_episodes([500.0], "QQQ"), hand_episodes([600.0], "SPY")]), config)
    batch = TradingBatch(tape, config, 2)
    batch.start(np.arange(2), np.arange(2), tape.start_row[:2], accounts=np.array([0, 0]))
    batch.refresh_masks()
    result = batch.step(np.array([BUY, BUY]))
    assert batch.held.tolist() == [10, 0] and result.replaced.tolist() == [False, True]
    assert not batch.refresh_masks()[:, BUY].any(), "the account's one trade of the day is taken"


def test_contracts_per_entry_come_from_the_risk_config() -> None:
    config = hand_config(100, risk=RiskConfig(contracts_per_entry=3))
    tape = MarketTape(hand_episodes([500.0]), config)
    batch = TradingBatch(tape, config, 1)
    batch.start(np.arange(1), np.arange(1), tape.start_row[:1])
    batch.refresh_masks()
    batch.step(np.array([BUY]))
    assert batch.held.tolist() == [3] and config.contracts == 3


# -- the config saved with the model ---------------------------------------------------------------

RISK = RiskConfig(max_daily_loss=500.0, contracts_per_entry=4)


def test_the_training_config_carries_the_risk_config_into_the_environment_and_the_evaluation() -> None:
    config = TrainConfig(train_from=date(2025, 6, 2), train_to=date(2025, 6, 2), validation_from=date(2025, 6, 3),
                         validation_to=date(2025, 6, 3), risk=RISK)
    assert env_config_for(config).risk == RISK
    manifest = {"config": json.loads(config.model_dump_json())}
    artifact = ModelArtifact("m", Path("."), None, manifest)  # type: ignore[arg-type]
    assert artifact.env_config().risk == RISK
    assert ModelArtifact("old", Path("."), None, {"config": {}}).env_config().risk == RiskConfig()  # type: ignore[arg-type]


def test_the_policy_masks_with_the_served_model_risk_config(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    inputs = FEATURE_SPEC.window * FEATURE_SPEC.n_features
    NumpyPolicy(hidden=((rng.normal(0, 0.05, (inputs, 8)), np.zeros(8)),),
                head=(rng.normal(0, 1.0, (8, 6)), np.zeros(6))).save(tmp_path / "policy.npz")
    (tmp_path / "manifest.json").write_text(json.dumps({"feature_spec_hash": FEATURE_SPEC.spec_hash,
                                                        "config": {"risk": RISK.model_dump(mode="json")}}))
    served = load_served_model("m", tmp_path, expected_spec_hash=FEATURE_SPEC.spec_hash,
                               loaded_at=datetime(2025, 7, 1, tzinfo=UTC))
    assert served.risk == RISK


def engine_for(model_risk: RiskConfig, *, allow: bool = False,
               model_premium: PremiumModelConfig | None = None) -> ExecutionEngine:
    return ExecutionEngine(RiskConfig(), DEFAULT_PREMIUM_CONFIG, FakeClock(AFTER_THE_DAY), FakeMonotonic(),
                           ExecutionConfig(None, RateLimit.parse("1000/1s"), allow_risk_mismatch=allow),
                           served=lambda _: ServedModel("m", "h", model_risk, model_premium))


def entry_effects(engine: ExecutionEngine) -> tuple[list[str], list[int]]:
    for n in range(5):
        engine.on_bar(bar("SPY", n, 600.0))
    effects = engine.on_decision(decision("SPY", 4, Action.BUY_CALL), "d")
    return ([d.reason for d in effects.denials()],
            [o.order.contracts for o in effects.orders if o.order.side is OrderSide.BUY])


def test_execution_refuses_a_model_trained_under_another_risk_config() -> None:
    denials, orders = entry_effects(engine_for(RISK))
    assert denials == [RISK_CONFIG_MISMATCH] and orders == []


def test_execution_trades_a_model_under_another_config_when_told_to_and_sizes_by_its_own() -> None:
    assert entry_effects(engine_for(RISK, allow=True)) == ([], [RiskConfig().contracts_per_entry])
    assert entry_effects(engine_for(RiskConfig())) == ([], [10])


def test_execution_refuses_a_model_priced_by_another_premium_model() -> None:
    other = PremiumModelConfig(vol_floor=0.09)
    denials, orders = entry_effects(engine_for(RiskConfig(), model_premium=other))
    assert denials == [PREMIUM_CONFIG_MISMATCH] and orders == []
    assert entry_effects(engine_for(RiskConfig(), model_premium=DEFAULT_PREMIUM_CONFIG)) == ([], [10])


def test_execution_prices_with_the_premium_model_of_its_settings() -> None:
    from scalper_execution.settings import ExecutionSettings

    premium = PremiumModelConfig(vol_floor=0.09)
    settings = ExecutionSettings.model_validate({"EXECUTION_PREMIUM_CONFIG": premium.model_dump(mode="json")})
    assert settings.premium == premium and ExecutionSettings().premium == DEFAULT_PREMIUM_CONFIG
