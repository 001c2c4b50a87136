"""CheckpointStore: atomic writes, ordering, and half-written files never count."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalper_trainer.checkpoints import CheckpointStore


class _Model:
    def __init__(self, payload: bytes, fail: bool = False) -> None:
        self.payload, self.fail = payload, fail

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.payload[:3])
        if self.fail:
            raise OSError("disk full")
        Path(path).write_bytes(self.payload)


def test_latest_is_the_highest_step(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "ck")
    assert store.latest() is None
    for step in (10_000, 5_000, 25_000):
        store.save(_Model(f"m{step}".encode()), step)
    latest = store.latest()
    assert latest is not None and latest.step == 25_000
    assert latest.path.read_bytes() == b"m25000"
    assert [c.step for c in store.all()] == [5_000, 10_000, 25_000]


def test_a_failed_write_leaves_no_visible_checkpoint(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(_Model(b"good"), 5_000)
    with pytest.raises(OSError):
        store.save(_Model(b"broken-model", fail=True), 10_000)
    latest = store.latest()
    assert latest is not None and latest.step == 5_000
    assert not store.path_for(10_000).exists()
