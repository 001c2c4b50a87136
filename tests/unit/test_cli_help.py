"""``scalper --help`` stays fast (it imports no command module), every command loads on demand, leaf
commands are commands (not groups), and help texts are clean terminal text."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from scalper_cli.main import COMMANDS, app, clean_help, load

LEAF_COMMANDS = {"demo", "train", "eval", "paper", "tensorboard", "docs"}
HEAVY_MODULES = ("pandas", "numpy", "sqlalchemy", "httpx", "scipy", "rich.progress", "scalper_shared.settings")


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, prog_name="scalper", env={"COLUMNS": "200"})


def modules_after(args: list[str]) -> tuple[str, list[str]]:
    """(stdout, modules imported) of a fresh process that ran ``scalper ARGS``."""
    probe = ("import json, sys\n"
             "from scalper_cli.main import app\n"
             f"try:\n    app({args!r}, prog_name='scalper')\nexcept SystemExit:\n    pass\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return result.stdout, json.loads(result.stdout.strip().splitlines()[-1])


def test_root_help_imports_no_command_module_and_nothing_heavy() -> None:
    stdout, modules = modules_after(["--help"])
    assert "Usage: scalper" in stdout
    loaded = [m for m in modules if m.startswith("scalper_cli.commands") or m.split(".")[0] in ("scalper_ingestion",
              "scalper_features", "scalper_trainer")]
    assert not loaded, f"scalper --help imported {loaded}"
    heavy = [m for m in HEAVY_MODULES if m in modules]
    assert not heavy, f"scalper --help imported {heavy}"


def test_root_help_lists_every_command_with_its_summary() -> None:
    output = invoke(["--help"]).output
    for name, entry in COMMANDS.items():
        assert f"{name} " in output and entry.summary in output, name
    assert "<bool>" not in output and "``" not in output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_loads_and_its_help_is_clean(name: str) -> None:
    command = load(name, COMMANDS[name])
    assert isinstance(command, TyperGroup) == (name not in LEAF_COMMANDS), f"{name}: leaf commands are not groups"
    paths = [[name]] + [[name, sub] for sub in getattr(command, "commands", {})]
    for path in paths:
        result = invoke([*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "``" not in result.output and "<bool>" not in result.output, (path, result.output)
        assert ":mod:" not in result.output and "--install-completion" not in result.output, (path, result.output)
        if name in LEAF_COMMANDS:
            assert re.search(rf"Usage: scalper {name} \[OPTIONS\]\s*\n", result.output), result.output
            assert "COMMAND [ARGS]" not in result.output


def test_clean_help_removes_rst_markup_and_rewraps_paragraphs() -> None:
    assert clean_help("``scalper train``: start\na job (:mod:`scalper_cli.demo`).\n\nSecond\n   part.") == \
        "scalper train: start a job (scalper_cli.demo).\n\nSecond part."


def test_a_command_module_is_imported_only_when_its_command_runs() -> None:
    _, modules = modules_after(["keys", "new", "--name", "probe"])
    assert "scalper_cli.commands.keys" in modules and "scalper_cli.commands.ingest" not in modules


def test_the_root_is_a_typer_app() -> None:
    assert isinstance(app, typer.Typer)
