"""The import contracts (pyproject.toml ``[tool.importlinter]``) hold, and breaking one fails the check.

The broken cases run the repository's own contracts over a copy of the packages with one forbidden
import added, so they prove the contracts catch it (not a tautology over a toy config).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "pyproject.toml"
PACKAGE_DIRS = [REPO_ROOT / "shared" / "scalper_shared", REPO_ROOT / "cli" / "scalper_cli",
                *sorted(path.parent for path in (REPO_ROOT / "services").glob("*/scalper_*/__init__.py"))]


def lint_imports(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "lint-imports"
    assert binary.exists(), "import-linter (requirements-dev.txt) is not installed: run make install"
    env = dict(os.environ)
    if pythonpath is not None:  # ahead of the editable installs, so the copy is what gets analysed
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(binary), "--no-cache", "--no-logo", *args, str(CONFIG)], capture_output=True,
                          text=True, timeout=120, cwd=pythonpath or REPO_ROOT, env=env)


def contract_ids() -> set[str]:
    config = tomllib.loads(CONFIG.read_text("utf-8"))["tool"]["importlinter"]
    return {contract["id"] for contract in config["contracts"]}


@pytest.fixture
def packages_copy(tmp_path: Path) -> Path:
    """Every first-party package copied under one directory (no __pycache__)."""
    for package in PACKAGE_DIRS:
        shutil.copytree(package, tmp_path / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_contracts_cover_packages_the_pure_core_the_thin_cli_and_cycles() -> None:
    assert {"packages", "pure-core", "thin-cli", "acyclic"} <= contract_ids()
    config = tomllib.loads(CONFIG.read_text("utf-8"))["tool"]["importlinter"]
    assert set(config["root_packages"]) == {path.name for path in PACKAGE_DIRS}, (
        "every first-party package must be a root package of the import contracts")


def test_the_repository_keeps_every_import_contract() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(contract_ids())} kept, 0 broken" in result.stdout


def test_the_unmodified_copy_keeps_every_contract(packages_copy: Path) -> None:
    """The broken cases below fail because of their one added import, not because of the copy."""
    result = lint_imports(pythonpath=packages_copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("contract", "module", "source", "expected"), [
    ("packages", "scalper_trainer/uses_ingestion.py", "import scalper_ingestion.replay\n",
     "scalper_trainer is not allowed to import scalper_ingestion"),
    ("packages", "scalper_shared/uses_policy.py", "from scalper_policy import settings\n",
     "scalper_shared is not allowed to import scalper_policy"),
    ("packages", "scalper_execution/uses_cli.py", "import scalper_cli.main\n",
     "scalper_execution is not allowed to import scalper_cli"),
    ("pure-core", "scalper_shared/core/uses_schema.py", "from scalper_shared.schema import messages\n",
     "scalper_shared.core is not allowed to import scalper_shared.schema"),
    ("thin-cli", "scalper_cli/uses_torch.py", "def threads() -> int:\n    import torch\n\n    return torch.get_num_threads()\n",
     "scalper_cli is not allowed to import torch"),
    # jobs imports env (through environments); env importing jobs back closes a cycle
    ("acyclic", "scalper_trainer/env/uses_jobs.py", "import scalper_trainer.jobs\n",
     "No cycles are allowed in scalper_trainer"),
], ids=["service-imports-service", "shared-imports-service", "service-imports-cli", "core-imports-schema",
        "cli-imports-torch", "cycle-inside-a-service"])
def test_a_forbidden_import_breaks_its_contract(packages_copy: Path, contract: str, module: str, source: str,
                                                expected: str) -> None:
    (packages_copy / module).write_text(source)
    result = lint_imports("--contract", contract, pythonpath=packages_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 kept, 1 broken" in result.stdout and expected in result.stdout, result.stdout


def test_ci_runs_the_linters_before_the_tests() -> None:
    steps = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text("utf-8").splitlines()
             if line.strip().startswith("make ")]
    assert "make lint" in steps and "make test" in steps, f".ci/run must run make lint and make test: {steps}"
    assert steps.index("make lint") < steps.index("make test"), f".ci/run must lint before testing: {steps}"
    lint = (REPO_ROOT / "Makefile").read_text("utf-8").split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "lint-imports" in lint and "ruff check" in lint and "mypy" in lint, f"make lint runs: {lint}"
