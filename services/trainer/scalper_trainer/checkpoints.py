"""Checkpoints of one job: ``step_000005000.zip`` files written atomically (temp file + rename).

A retried job resumes from :meth:`CheckpointStore.latest`; a half-written file is never picked up
because only the final rename makes a checkpoint visible. Each job has a disk budget: after every save
only the newest ``keep`` checkpoints stay, and older ones go until the job's files fit in
``budget_bytes`` (the newest always stays): a ``train`` key cannot fill the disk.
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

    def __init__(self, directory: Path, *, keep: int = 3, budget_bytes: int | None = 512 * 2**20) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = directory
        self.keep = keep
        self.budget_bytes = budget_bytes

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
        self.prune()
        return Checkpoint(step, final)

    def prune(self) -> list[Checkpoint]:
        """Delete the checkpoints beyond ``keep`` and over ``budget_bytes``, oldest first; returns them."""
        checkpoints = self.all()
        removed = checkpoints[:-self.keep]
        kept = checkpoints[-self.keep:]
        if self.budget_bytes is not None:
            while len(kept) > 1 and sum(c.path.stat().st_size for c in kept) > self.budget_bytes:
                removed.append(kept.pop(0))
        for checkpoint in removed:
            checkpoint.path.unlink(missing_ok=True)
        if removed:
            logger.info("pruned %d checkpoint(s) of %s (keep %d, budget %s bytes)", len(removed), self.directory,
                        self.keep, self.budget_bytes)
        return removed

    def size_bytes(self) -> int:
        return sum(c.path.stat().st_size for c in self.all())

    def all(self) -> list[Checkpoint]:
        if not self.directory.is_dir():
            return []
        found = [(m, p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return sorted((Checkpoint(int(m.group(1)), p) for m, p in found), key=lambda c: c.step)

    def latest(self) -> Checkpoint | None:
        checkpoints = self.all()
        return checkpoints[-1] if checkpoints else None
