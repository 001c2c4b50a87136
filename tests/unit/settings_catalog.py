"""Every environment variable the repository's code reads, discovered from its Settings classes.

Settings classes are found, not listed: every module of a ``scalper_*`` package of the repository
(shared/, cli/, services/*/) that is a ``settings.py`` or declares a ``class ...(...Settings)`` is
imported, and every pydantic-settings class defined there contributes its fields under
:func:`scalper_shared.settings.env_name`. A field or class someone adds tomorrow is therefore known
(and must be documented in ``.env.example``) without editing this module.

Compose-only variables are the few that no Scalper process reads: they configure the third-party
images or the compose file itself, and are documented in ``.env.example`` too.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from scalper_shared.settings import env_name

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_GLOBS = ("shared/scalper_*", "cli/scalper_*", "services/*/scalper_*")
SETTINGS_CLASS_STATEMENT = re.compile(r"^class \w+\([^)]*Settings\b[^)]*\):", re.MULTILINE)

COMPOSE_ONLY_VARIABLES: dict[str, str] = {
    "POSTGRES_USER": "timescaledb image: database role; also in the services' DATABASE_URL",
    "POSTGRES_PASSWORD": "timescaledb image: role password; also in the services' DATABASE_URL",
    "POSTGRES_DB": "timescaledb image: database created at first start",
    "REDIS_PASSWORD": "redis --requirepass; also in the services' REDIS_URL",
    "TORCH_CUDA_INDEX_URL": "build arg of trainer-gpu: the PyTorch CUDA wheel index",
    "GRAFANA_ADMIN_PASSWORD": "grafana image: admin password (profile monitoring)",
}
"""Variables of docker-compose.yml that no Settings class reads, with who consumes them."""

THIRD_PARTY_ENVIRONMENT: dict[str, frozenset[str]] = {
    "timescaledb": frozenset({"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "TIMESCALEDB_TELEMETRY"}),
    "redis": frozenset({"REDISCLI_AUTH"}),
    "grafana": frozenset({"GF_SECURITY_ADMIN_PASSWORD", "GF_USERS_ALLOW_SIGN_UP"}),
    "prometheus": frozenset(),
}
"""Container variables each third-party compose service may set (their images' documented ones)."""


@dataclass(frozen=True)
class Setting:
    env: str
    owner: type[BaseSettings]
    field: str
    info: FieldInfo


def repository_packages() -> list[str]:
    """Top-level ``scalper_*`` package names that live in this repository."""
    names = {path.name for pattern in PACKAGE_GLOBS for path in REPO_ROOT.glob(pattern)
             if (path / "__init__.py").is_file()}
    return sorted(names)


def settings_module_names() -> list[str]:
    """Dotted names of the repository modules that are ``settings.py`` or declare a Settings class."""
    modules = []
    for pattern in PACKAGE_GLOBS:
        for package_dir in REPO_ROOT.glob(pattern):
            if not (package_dir / "__init__.py").is_file():
                continue
            for path in package_dir.rglob("*.py"):
                if path.name == "settings.py" or SETTINGS_CLASS_STATEMENT.search(path.read_text("utf-8")):
                    parts = path.relative_to(package_dir.parent).with_suffix("").parts
                    modules.append(".".join(parts))
    return sorted(modules)


@cache
def settings_classes() -> tuple[type[BaseSettings], ...]:
    """Every pydantic-settings class (``ServiceSettings`` and others) defined in those modules."""
    found: list[type[BaseSettings]] = []
    for module_name in settings_module_names():
        module = importlib.import_module(module_name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseSettings) and obj.__module__ == module_name:
                found.append(obj)
    return tuple(found)


def settings_of(cls: type[BaseSettings]) -> list[Setting]:
    return [Setting(env_name(cls, field), cls, field, info) for field, info in cls.model_fields.items()]


@cache
def known_settings() -> dict[str, list[Setting]]:
    """Environment variable name -> every (class, field) that reads it."""
    catalog: dict[str, list[Setting]] = {}
    for cls in settings_classes():
        for setting in settings_of(cls):
            catalog.setdefault(setting.env, []).append(setting)
    return catalog


def service_settings_class(module: str) -> type[BaseSettings]:
    """The Settings class ``python -m <module>`` runs with: the one in ``<module>.settings`` with an
    ``http_port`` field."""
    classes = [cls for cls in settings_classes()
               if cls.__module__ == f"{module}.settings" and "http_port" in cls.model_fields]
    if len(classes) != 1:
        raise LookupError(f"{module}.settings defines {len(classes)} Settings classes with http_port, expected 1")
    return classes[0]


ENV_EXAMPLE = REPO_ROOT / ".env.example"
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


@dataclass(frozen=True)
class DocumentedVariable:
    name: str
    value: str
    comment: tuple[str, ...]
    line: int


def parse_env_example(path: Path = ENV_EXAMPLE) -> list[DocumentedVariable]:
    """``NAME=value`` lines of an env file, each with the comment block right above it.

    Raises ValueError naming the line for anything that is neither blank, comment nor assignment.
    """
    variables: list[DocumentedVariable] = []
    comment: list[str] = []
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        elif match := ASSIGNMENT.match(line):
            variables.append(DocumentedVariable(match[1], match[2], tuple(comment), number))
            comment = []
        else:
            raise ValueError(f"{path.name}:{number}: not a comment or NAME=value line: {raw!r}")
    return variables
