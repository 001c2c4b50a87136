"""``scalper tensorboard`` says where each training job's TensorBoard logs are and how to open them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from scalper_cli.main import app


def test_lists_every_jobs_log_directory_and_the_command_that_opens_them(tmp_path: Path) -> None:
    for job in ("train-a", "train-b"):
        (tmp_path / "jobs" / job / "tensorboard" / "MaskablePPO_1").mkdir(parents=True)
    (tmp_path / "jobs" / "train-c" / "checkpoints").mkdir(parents=True)  # no logs yet
    result = CliRunner().invoke(app, ["tensorboard"], env={"ARTIFACTS_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert f"train-a: {tmp_path / 'jobs' / 'train-a' / 'tensorboard'}" in result.output
    assert f"train-b: {tmp_path / 'jobs' / 'train-b' / 'tensorboard'}" in result.output
    assert "train-c" not in result.output
    assert f"tensorboard --logdir {tmp_path / 'jobs'} --host 127.0.0.1 --port 6006" in result.output
    one = CliRunner().invoke(app, ["tensorboard", "--job", "train-b", "--port", "7007"], env={"ARTIFACTS_DIR": str(tmp_path)})
    assert "train-a" not in one.output and f"--logdir {tmp_path / 'jobs' / 'train-b'} --host 127.0.0.1 --port 7007" in one.output


def test_without_logs_it_says_where_they_will_appear(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tensorboard"], env={"ARTIFACTS_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert f"no TensorBoard logs under {tmp_path / 'jobs'} yet" in result.output
