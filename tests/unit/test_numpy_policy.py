"""The numpy policy used by the API gives SB3 MaskablePPO's actions and probabilities."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from scalper_shared.core.policy_net import NumpyPolicy, masked_softmax

OBS_SHAPE = (20, 23)


class _BoxEnv(gym.Env):  # minimal env: only the spaces matter for building the policy
    observation_space = gym.spaces.Box(-10, 10, OBS_SHAPE, dtype=np.float32)
    action_space = gym.spaces.Discrete(6)

    def reset(self, *, seed=None, options=None):  # type: ignore[no-untyped-def]
        return np.zeros(OBS_SHAPE, np.float32), {}

    def step(self, action):  # type: ignore[no-untyped-def]
        return np.zeros(OBS_SHAPE, np.float32), 0.0, True, False, {}


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    from sb3_contrib import MaskablePPO

    return MaskablePPO("MlpPolicy", _BoxEnv(), seed=3, device="cpu")


def _random_batch(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.normal(0, 2, (n, *OBS_SHAPE)).astype(np.float32)
    masks = rng.random((n, 6)) < 0.6
    masks[:, 0] = True  # HOLD is always allowed
    return obs, masks


def test_numpy_probabilities_and_actions_equal_maskable_ppo(model) -> None:  # type: ignore[no-untyped-def]
    from scalper_trainer.export import export_numpy_policy

    policy = export_numpy_policy(model)
    obs, masks = _random_batch(256, seed=1)
    with torch.no_grad():
        dist = model.policy.get_distribution(torch.as_tensor(obs), action_masks=masks)
        sb3_probs = dist.distribution.probs.numpy()
    sb3_actions, _ = model.predict(obs, action_masks=masks, deterministic=True)

    probs = policy.probabilities(obs, masks)
    np.testing.assert_allclose(probs, sb3_probs, atol=1e-5)
    assert np.all(probs[~masks] == 0.0)
    single_rows = [policy.act(o, m) for o, m in zip(obs, masks, strict=True)]  # the API's hot path
    assert [action for action, _ in single_rows] == list(sb3_actions)
    single_probs = np.array([p for _, p in single_rows])
    np.testing.assert_allclose(single_probs, sb3_probs, atol=1e-5)
    assert np.all(single_probs[~masks] == 0.0)


def test_saved_policy_loads_identically(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from scalper_trainer.export import export_numpy_policy

    policy = export_numpy_policy(model)
    policy.save(tmp_path / "policy.npz")
    loaded = NumpyPolicy.load(tmp_path / "policy.npz")
    obs, masks = _random_batch(8, seed=2)
    np.testing.assert_array_equal(loaded.probabilities(obs, masks), policy.probabilities(obs, masks))


def test_wrong_observation_size_is_a_clear_error() -> None:
    policy = NumpyPolicy(hidden=(), head=(np.zeros((460, 6)), np.zeros(6)))
    with pytest.raises(ValueError, match="observation has 10 values, the network takes 460"):
        policy.logits(np.zeros((1, 10)))


def test_stochastic_action_needs_an_rng_and_respects_the_mask() -> None:
    policy = NumpyPolicy(hidden=(), head=(np.zeros((460, 6)), np.zeros(6)))
    mask = np.array([False, False, True, False, False, True])
    with pytest.raises(ValueError, match="explicit rng"):
        policy.act(np.zeros(460), mask, deterministic=False)
    rng = np.random.default_rng(0)
    assert {policy.act(np.zeros(460), mask, deterministic=False, rng=rng)[0] for _ in range(50)} == {2, 5}


def test_masked_softmax_rows_sum_to_one() -> None:
    probs = masked_softmax(np.array([[1.0, 2.0, 3.0]]), np.array([[True, False, True]]))
    assert probs[0, 1] == 0.0 and probs.sum() == pytest.approx(1.0)


def test_a_standardised_policy_exports_with_the_statistics_folded_in() -> None:
    """The exported numpy policy reads the raw observation and gives SB3's probabilities; the
    statistics survive a save and load of the SB3 model (a resumed job keeps them)."""
    from sb3_contrib import MaskablePPO

    from scalper_trainer.export import export_numpy_policy
    from scalper_trainer.normalise import StandardisedFlatten, observation_stats

    rng = np.random.default_rng(4)
    bars = rng.normal(3.0, 5.0, (500, 21))
    mean, std = observation_stats(bars)
    assert np.allclose(mean[:21], bars.mean(axis=0)) and np.allclose(std[:21], bars.std(axis=0))
    assert mean[21:23] == [0.0, 0.0] and std[21:23] == [1.0, 1.0] and len(mean) == 460
    model = MaskablePPO("MlpPolicy", _BoxEnv(), seed=3, device="cpu",
                        policy_kwargs={"features_extractor_class": StandardisedFlatten,
                                       "features_extractor_kwargs": {"mean": mean, "std": std}})
    obs, masks = _random_batch(64, seed=5)
    with torch.no_grad():
        sb3_probs = model.policy.get_distribution(torch.as_tensor(obs), action_masks=masks).distribution.probs.numpy()
        unscaled = model.policy.mlp_extractor.policy_net(torch.as_tensor(obs.reshape(64, -1)))
        scaled = model.policy.mlp_extractor.policy_net(model.policy.extract_features(torch.as_tensor(obs)))
    assert not torch.allclose(unscaled, scaled)      # the standardisation is really applied
    np.testing.assert_allclose(export_numpy_policy(model).probabilities(obs, masks), sb3_probs, atol=1e-5)
    with pytest.raises(ValueError, match="must be"):
        observation_stats(bars[:, :5])


def test_a_standardised_model_saved_and_loaded_exports_the_same_policy(tmp_path: Path) -> None:
    from sb3_contrib import MaskablePPO

    from scalper_trainer.export import export_numpy_policy
    from scalper_trainer.normalise import StandardisedFlatten, observation_stats

    mean, std = observation_stats(np.random.default_rng(6).normal(1.0, 3.0, (100, 21)))
    model = MaskablePPO("MlpPolicy", _BoxEnv(), seed=3, device="cpu",
                        policy_kwargs={"features_extractor_class": StandardisedFlatten,
                                       "features_extractor_kwargs": {"mean": mean, "std": std}})
    model.save(tmp_path / "model.zip")
    loaded = MaskablePPO.load(tmp_path / "model.zip", device="cpu")
    obs, masks = _random_batch(16, seed=7)
    np.testing.assert_array_equal(export_numpy_policy(loaded).probabilities(obs, masks),
                                  export_numpy_policy(model).probabilities(obs, masks))
