"""Checkpoints of one job: ``step_000005000.zip`` files written atomically (temp file + rename).

A retried job resumes from :meth:`CheckpointStore.latest`; a half-written file is never picked up
because only the final rename makes a checkpoint visible.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^step_(\d{9})\.zip$")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


class CheckpointStore:
    """The checkpoint directory of one job."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, step: int) -> Path:
        return self.directory / f"step_{step:09d}.zip"

    def save(self, model: Any, step: int) -> Checkpoint:
        """Write ``model`` (anything with ``save(path)``) as the checkpoint of ``step``, atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path_for(step)
        tmp = final.with_name(f".{final.stem}.{os.getpid()}.tmp.zip")
        model.save(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        logger.info("checkpoint %s written at step %d", final, step)
        return Checkpoint(step, final)

    def all(self) -> list[Checkpoint]:
        if not self.directory.is_dir():
            return []
        found = [(m, p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return sorted((Checkpoint(int(m.group(1)), p) for m, p in found), key=lambda c: c.step)

    def latest(self) -> Checkpoint | None:
        checkpoints = self.all()
        return checkpoints[-1] if checkpoints else None
