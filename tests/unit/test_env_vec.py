"""The gymnasium env against SB3's checker, and the batched VecEnv against N single envs."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks
from stable_baselines3.common.env_checker import check_env

from scalper_shared.core.features import FEATURE_SPEC, observation_at
from scalper_shared.core.masks import action_masks
from scalper_shared.core.rewards import REWARD_TERMS
from scalper_trainer.env import (
    EnvConfig,
    EpisodeSampling,
    MarketTape,
    ScalperVecEnv,
    TradingEnv,
    make_reference_vec_env,
    make_vec_env,
    synthetic_episodes,
)

SEED = 11
N_ENVS = 4


@pytest.fixture(scope="module")
def episodes():
    return synthetic_episodes(date(2024, 3, 4), date(2024, 3, 6), seed=3)


@pytest.fixture(scope="module")
def config() -> EnvConfig:
    # random starts and short episodes: many resets inside a few hundred steps
    return EnvConfig(sampling=EpisodeSampling(start_row=300, random_start_minutes=40, min_steps=20),
                     step_reward_terms=True)


def random_allowed(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    return (rng.random(masks.shape) * masks).argmax(axis=1)


def test_single_env_passes_sb3_check_env(episodes, config) -> None:
    check_env(TradingEnv(episodes, config), warn=False, skip_render_check=True)


def test_batched_env_equals_n_single_envs_step_for_step(episodes, config) -> None:
    tape = MarketTape(episodes, config)
    vec = make_vec_env(tape, config, N_ENVS, seed=SEED)
    singles = [TradingEnv(tape, config) for _ in range(N_ENVS)]
    vec_obs = vec.reset()
    single_obs = np.stack([env.reset(seed=SEED + i)[0] for i, env in enumerate(singles)])
    np.testing.assert_array_equal(vec_obs, single_obs)
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(250):
        masks = get_action_masks(vec)
        np.testing.assert_array_equal(masks, np.stack([env.action_masks() for env in singles]))
        actions = random_allowed(rng, masks)
        vec_obs, rewards, dones, infos = vec.step(actions)
        for i, env in enumerate(singles):
            obs, reward, terminated, _, info = env.step(int(actions[i]))
            assert dones[i] == terminated
            assert rewards[i] == pytest.approx(reward, rel=1e-6, abs=1e-9)
            assert info["reward_terms"] == pytest.approx(infos[i]["reward_terms"], rel=1e-9, abs=1e-12)
            if terminated:
                finished += 1
                np.testing.assert_allclose(infos[i]["terminal_observation"], obs, rtol=1e-6, atol=1e-7)
                for key in ("episode_trades", "symbol", "day", "episode_pnl"):
                    assert infos[i][key] == pytest.approx(info[key])
                assert infos[i]["episode"]["r"] == pytest.approx(info["episode"]["r"], rel=1e-9, abs=1e-12)
                assert infos[i]["episode"]["l"] == info["episode"]["l"]
                obs, _ = env.reset()
            np.testing.assert_allclose(vec_obs[i], obs, rtol=1e-6, atol=1e-7)
    assert finished >= N_ENVS                          # the comparison crossed episode boundaries


def test_reference_setup_plays_the_same_episodes(episodes, config) -> None:
    tape = MarketTape(episodes, config)
    ours, reference = make_vec_env(tape, config, 3, seed=SEED), make_reference_vec_env(tape, config, 3, seed=SEED)
    np.testing.assert_array_equal(ours.reset(), reference.reset())
    rng = np.random.default_rng(1)
    for _ in range(60):
        masks = get_action_masks(ours)
        np.testing.assert_array_equal(masks, get_action_masks(reference))
        actions = random_allowed(rng, masks)
        a, ra, ad, _ = ours.step(actions)
        b, rb, bd, _ = reference.step(actions)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ra, rb, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(ad, bd)


def test_observations_match_the_shared_observation_builder(episodes, config) -> None:
    vec = make_vec_env(episodes, config, 8, seed=2)
    obs = vec.reset()
    batch = vec.batch
    for i in range(8):
        episode, row = int(batch.episode[i]), int(batch.session_rows()[i])
        session = episodes.features[episodes.offsets[episode]:episodes.offsets[episode + 1]]
        np.testing.assert_array_equal(obs[i], observation_at(session, row))
    assert obs.shape == (8, FEATURE_SPEC.window, FEATURE_SPEC.n_features)


def test_masks_are_the_shared_mask_rule(episodes, config) -> None:
    vec = make_vec_env(episodes, config, 16, seed=5)
    vec.reset()
    rng = np.random.default_rng(3)
    for _ in range(80):
        b = vec.batch
        since = np.where(b.last_exit_row < -1e8, np.inf, b.row - b.last_exit_row)
        assert (b.account_trades() == b.trades_today).all()  # training: every environment its own account
        expected = action_masks(b.held > 0, minutes_to_close=b.tape.minutes_to_close[b.row],
                                trading_state=b.trading_states(), trades_today=b.trades_today,
                                minutes_since_exit=since, exit_was_stop=b.exit_was_stop,
                                pnl_today=b.account_pnl(), config=config.risk)
        masks = get_action_masks(vec)
        np.testing.assert_array_equal(masks, expected)
        vec.step(random_allowed(rng, masks))


def test_same_seed_same_trajectory_and_reseeding_restarts_it(episodes, config) -> None:
    def run(env: ScalperVecEnv) -> list[np.ndarray]:
        rng = np.random.default_rng(9)
        out = [env.reset()]
        for _ in range(40):
            out.append(env.step(random_allowed(rng, get_action_masks(env)))[0])
        return out

    first, second = make_vec_env(episodes, config, 4, seed=1), make_vec_env(episodes, config, 4, seed=1)
    a = run(first)
    for x, y in zip(a, run(second), strict=True):
        np.testing.assert_array_equal(x, y)
    first.seed(1)
    for x, y in zip(a, run(first), strict=True):
        np.testing.assert_array_equal(x, y)


def test_episode_end_reports_every_reward_term_and_the_terminal_observation(episodes, config) -> None:
    vec = make_vec_env(episodes, config, 6, seed=4)
    vec.reset()
    rng = np.random.default_rng(4)
    totals = np.zeros(6)
    ended = []
    for _ in range(200):
        _, rewards, dones, infos = vec.step(random_allowed(rng, get_action_masks(vec)))
        for i in range(6):
            assert set(infos[i]["reward_terms"]) == set(REWARD_TERMS)
            assert sum(infos[i]["reward_terms"].values()) == pytest.approx(rewards[i], rel=1e-5, abs=1e-6)
        totals += rewards
        for i in np.flatnonzero(dones):
            info = infos[i]
            assert info["terminal_observation"].shape == (20, 23)
            assert set(info["episode_reward_terms"]) == set(REWARD_TERMS)
            assert sum(info["episode_reward_terms"].values()) == pytest.approx(info["episode"]["r"], abs=1e-6)
            assert info["episode"]["r"] == pytest.approx(totals[i], rel=1e-5, abs=1e-4)
            assert info["TimeLimit.truncated"] is False
            ended.append(info)
            totals[i] = 0.0
    assert ended


def test_vec_env_answers_the_sb3_attribute_and_method_calls(episodes, config) -> None:
    vec = make_vec_env(episodes, config, 3, seed=0)
    vec.reset()
    assert vec.has_attr("action_masks")
    assert len(vec.env_method("action_masks", indices=[0, 2])) == 2
    assert vec.env_is_wrapped(object) == [False, False, False]  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="render"):
        vec.env_method("render")


@pytest.fixture
def one_torch_thread():
    """Torch's default thread pool oversubscribes the shared 2-core machine; one thread is faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_torch_thread")
def test_maskable_ppo_trains_on_the_batched_env_without_choosing_masked_actions(episodes, config) -> None:
    vec = make_vec_env(episodes, config, 8, seed=0)
    model = MaskablePPO("MlpPolicy", vec, n_steps=32, batch_size=128, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    obs = vec.reset()
    for _ in range(30):
        masks = get_action_masks(vec)
        actions, _ = model.predict(obs, action_masks=masks, deterministic=False)
        assert masks[np.arange(8), actions].all()
        obs, *_ = vec.step(actions)
