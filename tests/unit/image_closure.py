"""What a service image installs against what its code imports, read from the repository alone.

An image installs the distributions its Dockerfile's runtime stage names (``pip install ... scalper-x``)
from wheels the builder stage made of local projects (``pip wheel ... ./shared ./services/x``), plus
what their ``pyproject.toml`` files declare, transitively through first-party projects (extras
included: ``scalper-shared[studies]``). The code side is the import closure of the installed
packages: every module of the service's own packages and, transitively, every first-party module
they import (function-level imports too: a lazy import fails as surely, only later; imports under
``if TYPE_CHECKING:`` and in ``try: ... except ImportError:`` are not run or are optional). Top-level
third-party module names map to distributions with :func:`importlib.metadata.packages_distributions`;
only that name mapping comes from the development environment, never what it happens to have installed.
"""

from __future__ import annotations

import ast
import os
import shlex
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}
OPTIONS_WITH_VALUES = frozenset({"-c", "--constraint", "-f", "--find-links", "-i", "--index-url", "--extra-index-url",
                                 "-r", "--requirement", "--wheel-dir", "-w"})


def _absolute(path: Path) -> Path:
    """Absolute and normalised, symlinks kept (a project's path is how the repository names it)."""
    return Path(os.path.abspath(path))


@dataclass(frozen=True)
class Project:
    """A first-party distribution: its directory, import packages and declared requirements."""

    name: str
    root: Path
    packages: tuple[str, ...]
    requires: tuple[Requirement, ...]
    extras: dict[str, tuple[Requirement, ...]]


def load_project(root: Path) -> Project:
    meta = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))["project"]
    packages = tuple(sorted(p.parent.name for p in root.glob("*/__init__.py")))
    extras: dict[str, tuple[Requirement, ...]] = {canonicalize_name(extra): tuple(map(Requirement, reqs))
                                                  for extra, reqs in meta.get("optional-dependencies", {}).items()}
    return Project(canonicalize_name(meta["name"]), _absolute(root), packages,
                   tuple(map(Requirement, meta.get("dependencies", []))), extras)


def first_party_projects(repo_root: Path) -> dict[str, Project]:
    roots = [repo_root / "shared", repo_root / "cli", *sorted((repo_root / "services").glob("*"))]
    projects = [load_project(root) for root in roots if (root / "pyproject.toml").is_file()]
    return {project.name: project for project in projects}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


@dataclass(frozen=True)
class DockerInstall:
    """The local projects the builder stage wheels and the distributions the runtime stage installs."""

    built: frozenset[Path]
    installed: tuple[str, ...]


def _arguments(command: str, verb: str) -> Iterator[str]:
    """The positional arguments of every ``pip <verb>`` in a RUN command (options and their values dropped)."""
    for part in command.split("&&"):
        words = shlex.split(part)
        if "pip" not in words or verb not in words[words.index("pip"):]:
            continue
        rest = words[words.index(verb, words.index("pip")) + 1:]
        skip = False
        for word in rest:
            if skip:
                skip = False
            elif word.startswith("-"):
                skip = word in OPTIONS_WITH_VALUES
            else:
                yield word


def docker_install(instructions: list[tuple[str, str]], context: Path) -> DockerInstall:
    """From a Dockerfile's (INSTRUCTION, arguments) pairs: wheels built from local paths, packages installed
    in the final stage."""
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    built: set[Path] = set()
    installed: list[str] = []
    for i, (keyword, rest) in enumerate(instructions):
        if keyword != "RUN":
            continue
        command = rest.split(" ", 1)[1] if rest.startswith("--mount") else rest
        while command.startswith("--"):  # further RUN flags (--mount=..., --network=...)
            command = command.split(" ", 1)[1]
        if i < last_from:
            built |= {_absolute(context / arg) for arg in _arguments(command, "wheel") if arg.startswith(".")}
        else:
            installed += [arg for arg in _arguments(command, "install") if not arg.startswith((".", "/"))]
    return DockerInstall(frozenset(built), tuple(installed))


@dataclass(frozen=True)
class Declared:
    """The closure of declared requirements: first-party projects and third-party distribution names."""

    first_party: frozenset[str]
    third_party: frozenset[str]


def declared_closure(roots: Iterable[str], projects: dict[str, Project]) -> Declared:
    first: set[str] = set()
    third: set[str] = set()
    pending = [Requirement(root) for root in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        req = pending.pop()
        name = canonicalize_name(req.name)
        key = (name, frozenset(map(canonicalize_name, req.extras)))
        if key in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(key)
        project = projects.get(name)
        if project is None:
            third.add(name)
            continue
        first.add(name)
        pending += project.requires
        for extra in key[1]:
            pending += project.extras.get(extra, ())
    return Declared(frozenset(first), frozenset(third))


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError") for t in caught)


def _runtime_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Absolute names a module imports when run (every level), minus TYPE_CHECKING and optional imports."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)) or (
                isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers)):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names if alias.name != "*"}
    return names


@cache
def _module_index(roots: tuple[Path, ...]) -> dict[str, Path]:
    """Dotted name -> file for every module of the first-party packages under ``roots``."""
    index: dict[str, Path] = {}
    for root in roots:
        for package in root.glob("*/__init__.py"):
            for path in package.parent.rglob("*.py"):
                parts = path.relative_to(root).with_suffix("").parts
                index[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return index


@dataclass(frozen=True)
class ImportClosure:
    first_party_packages: frozenset[str]
    """Top-level first-party packages the closure imports."""
    third_party_modules: dict[str, frozenset[str]]
    """Top-level third-party module -> the first-party modules importing it."""


def import_closure(start_packages: Iterable[str], projects: dict[str, Project]) -> ImportClosure:
    index = _module_index(tuple(sorted(project.root for project in projects.values())))
    pending = [name for name in index if name.split(".")[0] in set(start_packages)]
    visited: set[str] = set()
    third: dict[str, set[str]] = {}
    while pending:
        module = pending.pop()
        if module in visited:
            continue
        visited.add(module)
        path = index[module]
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        for name in _runtime_imports(tree, module, path.name == "__init__.py"):
            top = name.split(".")[0]
            if top in STDLIB:
                continue
            if not any(m == top or m.startswith(top + ".") for m in index):
                third.setdefault(top, set()).add(module)
                continue
            parts = name.split(".")
            pending += [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in index]
    first = {module.split(".")[0] for module in visited}
    return ImportClosure(frozenset(first), {top: frozenset(users) for top, users in third.items()})


@cache
def _top_level_distributions() -> Mapping[str, list[str]]:
    return packages_distributions()


def distributions_of(module: str) -> frozenset[str]:
    return frozenset(canonicalize_name(d) for d in _top_level_distributions().get(module, ()))


def image_problems(dockerfile: Path, context: Path, projects: dict[str, Project]) -> list[str]:
    """Every imported module the image would not have, and every declared project its builder does not wheel."""
    install = docker_install(dockerfile_instructions(dockerfile), context)
    problems: list[str] = []
    if not install.installed:
        return [f"{dockerfile.name}: the runtime stage installs nothing (pip install <distribution>)"]
    declared = declared_closure(install.installed, projects)
    for name in sorted(declared.first_party):
        if projects[name].root not in install.built:
            problems.append(f"{dockerfile.name}: {name} is required but the builder does not wheel "
                            f"{projects[name].root.relative_to(_absolute(context))}")
    own = [package for name in install.installed if canonicalize_name(Requirement(name).name) in projects
           for package in projects[canonicalize_name(Requirement(name).name)].packages]
    closure = import_closure(own, projects)
    owners = {package: project.name for project in projects.values() for package in project.packages}
    for package in sorted(closure.first_party_packages):
        if owners[package] not in declared.first_party:
            problems.append(f"{dockerfile.name}: imports {package} ({owners[package]}), which no installed "
                            f"pyproject.toml declares")
    for module, users in sorted(closure.third_party_modules.items()):
        dists = distributions_of(module)
        if not dists & declared.third_party:
            where = ", ".join(sorted(users)[:3])
            problems.append(f"{dockerfile.name}: {where} import(s) {module} "
                            f"({', '.join(sorted(dists)) or 'no known distribution'}), not declared in the "
                            f"installed pyproject.toml files")
    return problems

