"""Loading, refusing and atomically swapping the served numpy policy; no torch in the policy service."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from scalper_policy.inference import ModelHolder, ModelRefused, decide, load_served_model
from scalper_policy.live import MaskInputs
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.core.policy_net import NumpyPolicy
from tests.unit.policy_support import NOW, observation, random_policy, served, write_artifact


def test_served_model_decides_exactly_as_the_saved_numpy_policy(tmp_path: Path) -> None:
    model = served(tmp_path, "m1", seed=4)
    obs = np.asarray(observation(seed=2), dtype=np.float32)
    mask = MaskInputs(minutes_to_close=200).mask()
    decision = decide(model, obs, mask)
    action, probabilities = random_policy(4).act(obs, mask)
    assert int(decision.action) == action
    np.testing.assert_array_equal(decision.probabilities, probabilities)


def test_a_model_of_another_feature_spec_is_refused_with_both_hashes(tmp_path: Path) -> None:
    directory = write_artifact(tmp_path, "old", spec_hash="ab" * 32)
    with pytest.raises(ModelRefused) as refused:
        load_served_model("old", directory, expected_spec_hash=FEATURE_SPEC.spec_hash, loaded_at=NOW)
    assert "feature-spec hash mismatch" in refused.value.reason
    assert "abababab" in refused.value.reason and FEATURE_SPEC.spec_hash[:16] in refused.value.reason


def test_a_network_of_the_wrong_input_size_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "small"
    directory.mkdir()
    NumpyPolicy(hidden=(), head=(np.zeros((10, 6)), np.zeros(6))).save(directory / "policy.npz")
    (directory / "manifest.json").write_text(json.dumps({"feature_spec_hash": FEATURE_SPEC.spec_hash}))
    with pytest.raises(ModelRefused, match="takes 10 inputs"):
        load_served_model("small", directory, expected_spec_hash=FEATURE_SPEC.spec_hash, loaded_at=NOW)


def test_a_missing_artifact_is_refused_not_crashed(tmp_path: Path) -> None:
    with pytest.raises(ModelRefused, match="unreadable manifest.json"):
        load_served_model("gone", tmp_path / "nowhere", expected_spec_hash=FEATURE_SPEC.spec_hash, loaded_at=NOW)


def test_readers_during_swaps_always_get_one_whole_model(tmp_path: Path) -> None:
    first, second = served(tmp_path, "a", seed=1), served(tmp_path, "b", seed=2)
    holder = ModelHolder(first)
    stop, seen, errors = threading.Event(), set(), []

    def read() -> None:
        while not stop.is_set():
            model = holder.current()
            if model is None or model.model_id not in ("a", "b"):
                errors.append(model)
            else:
                seen.add(model.model_id)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for i in range(300):
        holder.swap(second if i % 2 == 0 else first)
        time.sleep(0.0005)  # let the readers run between swaps
    stop.set()
    for thread in readers:
        thread.join()
    assert not errors and seen == {"a", "b"}


def test_importing_the_policy_app_does_not_import_torch() -> None:
    code = ("import sys; import scalper_policy.app, scalper_policy.main; "
            "bad = [m for m in ('torch', 'sb3_contrib', 'stable_baselines3') if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the policy service imported {done.stdout.strip()} {done.stderr[-500:]}"
