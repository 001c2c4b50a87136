"""``scalper tensorboard``: where the training jobs' TensorBoard logs are, and TensorBoard on them.

Every training job writes its curves (PPO's losses, the checkpoint diagnostics under
``diagnostics/*``, reward terms under ``reward/*``) to ``<ARTIFACTS_DIR>/jobs/<job id>/tensorboard/``.
Without ``--serve`` this prints the log directories and the command that opens them; with it, it
runs TensorBoard (installed with the trainer package) on them until Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from scalper_shared.settings import ServiceSettings, load_settings


def log_dirs(artifacts_dir: Path, job: str | None = None) -> list[Path]:
    """Each job's TensorBoard directory (of ``job`` only when given), oldest first."""
    jobs = artifacts_dir / "jobs"
    found = [p for p in jobs.glob("*/tensorboard") if p.is_dir() and (job is None or p.parent.name == job)]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def tensorboard(
    job: Annotated[str | None, typer.Option(help="Only this training job's logs")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="Run TensorBoard on the logs (until Ctrl-C)")] = False,
    port: Annotated[int, typer.Option(help="TensorBoard's port with --serve")] = 6006,
) -> None:
    """List the TensorBoard logs of the training jobs and how to open them (--serve runs TensorBoard)."""
    artifacts = load_settings(ServiceSettings).artifacts_dir
    root = artifacts / "jobs" / job if job else artifacts / "jobs"
    dirs = log_dirs(artifacts, job)
    if not dirs:
        typer.echo(f"no TensorBoard logs under {root} yet: they appear there once a training job has started "
                   f"(scalper train ...; ARTIFACTS_DIR={artifacts})", err=True)
        raise typer.Exit(1)
    for path in dirs:
        typer.echo(f"{path.parent.name}: {path}")
    command = ["tensorboard", "--logdir", str(root), "--host", "127.0.0.1", "--port", str(port)]
    if not serve:
        typer.echo(f"open them with: {' '.join(command)}  (or: scalper tensorboard --serve), then http://127.0.0.1:{port}")
        return
    binary = shutil.which("tensorboard", path=str(Path(sys.executable).parent)) or shutil.which("tensorboard")
    if binary is None:
        typer.echo("tensorboard is not installed here: it comes with the trainer package (make install)", err=True)
        raise typer.Exit(1)
    typer.echo(f"TensorBoard on http://127.0.0.1:{port} (Ctrl-C stops it)")
    os.execv(binary, [binary, *command[1:]])
