"""A training job run in this process, without the stack: ``scalper train --local`` and the benchmarks.

It is the worker's own code path (:class:`~scalper_trainer.jobs.TrainingRun` with the default
environment factory): the same checkpoints, diagnostics, ``training_diagnostics`` rows, artifact
directory and ``models`` row, so the model can then be evaluated, promoted and paper-traded. Only the
job status differs: a :class:`LocalStatus` hands every status save to a callback (a progress bar)
instead of RQ's job meta. Ctrl-C asks for a cooperative stop at the next callback (a checkpoint is
written; the job's state is ``cancelled``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from scalper_shared.schema.training import Diagnostics, TrainConfig
from scalper_trainer.env.bundle import EnvFactory, default_env_factory
from scalper_trainer.jobs import RunResult, TrainingRun

logger = logging.getLogger(__name__)

DIAGNOSTICS_FILE = "diagnostics.json"
MODEL_ID_FILE = "model_id"


class LocalStatus:
    """The job status of a local run: the same ``meta`` a worker keeps in RQ, saved to a callback."""

    def __init__(self, on_save: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.meta: dict[str, Any] = {}
        self.on_save = on_save

    def save_meta(self) -> None:
        if self.on_save is not None:
            self.on_save(self.meta)


class StopFlag:
    """A cooperative cancel flag set from this process (Ctrl-C)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def is_set(self) -> bool:
        return self.event.is_set()


def diagnostics_rows(diagnostics: list[Diagnostics]) -> list[dict[str, Any]]:
    """One flat JSON object per checkpoint: the record with PPO's statistics at the top level."""
    rows = []
    for d in diagnostics:
        row = d.model_dump(mode="json", exclude={"ppo"})
        rows.append({"step": row.pop("step"), **d.ppo.model_dump(mode="json"), **row})
    return rows


def train_locally(config: TrainConfig, *, job_id: str, engine: Engine, artifacts_dir: Path, out_dir: Path,
                  on_status: Callable[[dict[str, Any]], None] | None = None, stop: StopFlag | None = None,
                  env_factory: EnvFactory = default_env_factory, torch_threads: int = 0) -> RunResult:
    """Train ``config`` here; write ``out_dir/diagnostics.json`` (and ``out_dir/model_id`` when it finished).
    ``torch_threads``: torch's intra-op threads, as the worker sets them (``TRAINER_TORCH_THREADS``; 0 keeps
    torch's default)."""
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = TrainingRun(config, job_id, artifacts_dir=artifacts_dir, engine=engine, env_factory=env_factory,
                      status=LocalStatus(on_status), cancel=stop or StopFlag())
    result = run.run()
    _write_atomically(out_dir / DIAGNOSTICS_FILE, json.dumps(diagnostics_rows(result.diagnostics), indent=1))
    if result.model_id is not None:
        _write_atomically(out_dir / MODEL_ID_FILE, result.model_id + "\n")
    logger.info("local job %s %s at step %d; diagnostics in %s", job_id, result.state.value, result.steps,
                out_dir / DIAGNOSTICS_FILE)
    return result


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)
