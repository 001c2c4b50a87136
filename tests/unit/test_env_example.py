""".env.example documents every setting any Scalper Settings class reads, and nothing else."""

from __future__ import annotations

import enum
import json
from collections import Counter
from pathlib import Path, PurePath

import pytest
from pydantic_core import PydanticUndefined

from tests.unit.settings_catalog import (
    COMPOSE_ONLY_VARIABLES,
    ENV_EXAMPLE,
    DocumentedVariable,
    Setting,
    known_settings,
    parse_env_example,
    settings_classes,
)

SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "API_KEY")


@pytest.fixture(scope="module")
def documented() -> dict[str, DocumentedVariable]:
    variables = parse_env_example()
    duplicates = [name for name, count in Counter(v.name for v in variables).items() if count > 1]
    assert not duplicates, f".env.example sets these more than once: {duplicates}"
    return {v.name: v for v in variables}


def rendered_defaults(setting: Setting) -> set[str]:
    """Ways the documentation may spell a field's default after ``Default:``."""
    default = setting.info.get_default(call_default_factory=True)
    if default is PydanticUndefined:
        return {"required"}
    if default is None or default == "":
        return {"empty", "unset"}
    if isinstance(default, bool):
        return {str(default).lower()}
    if isinstance(default, enum.Enum):
        return {str(default.value)}
    if isinstance(default, float):
        return {str(default), f"{default:g}"}
    if isinstance(default, list | tuple | set | frozenset | dict):
        items = sorted(default) if isinstance(default, set | frozenset) else default
        return {json.dumps(items, separators=(",", ":")), json.dumps(items)}
    if isinstance(default, PurePath):
        return {default.as_posix()}
    return {str(default)}


def documented_default(variable: DocumentedVariable) -> str | None:
    """The first word after ``Default:`` in the variable's comment, trailing punctuation removed."""
    for line in variable.comment:
        if line.startswith("Default:"):
            words = line.removeprefix("Default:").split()
            return words[0].rstrip(".,;") if words else ""
    return None


def test_every_setting_of_every_settings_class_is_documented(documented: dict[str, DocumentedVariable]) -> None:
    missing = {name: sorted({f"{s.owner.__module__}.{s.owner.__name__}.{s.field}" for s in settings})
               for name, settings in known_settings().items() if name not in documented}
    assert not missing, f"settings missing from .env.example (document each with a comment): {missing}"


def test_env_example_documents_nothing_unknown(documented: dict[str, DocumentedVariable]) -> None:
    unknown = sorted(set(documented) - set(known_settings()) - set(COMPOSE_ONLY_VARIABLES))
    assert not unknown, (f".env.example documents variables no Settings class reads and compose does not "
                         f"use: {unknown}")


def test_every_compose_only_variable_is_documented(documented: dict[str, DocumentedVariable]) -> None:
    missing = sorted(set(COMPOSE_ONLY_VARIABLES) - set(documented))
    assert not missing, f"compose variables missing from .env.example: {missing}"


def test_each_variable_says_what_it_does_its_default_and_valid_values(
        documented: dict[str, DocumentedVariable]) -> None:
    problems = []
    for variable in documented.values():
        description = [line for line in variable.comment if not line.startswith(("Default:", "Valid:"))]
        if not description:
            problems.append(f"{variable.name} (line {variable.line}): no description")
        if documented_default(variable) is None:
            problems.append(f"{variable.name} (line {variable.line}): no 'Default:' line")
        if not any(line.startswith("Valid:") for line in variable.comment):
            problems.append(f"{variable.name} (line {variable.line}): no 'Valid:' line")
    assert not problems, "\n".join(problems)


def test_documented_defaults_are_the_defaults_in_the_code(documented: dict[str, DocumentedVariable]) -> None:
    wrong = []
    for name, settings in known_settings().items():
        variable = documented.get(name)
        if variable is None:
            continue  # reported by the completeness test
        said = documented_default(variable)
        accepted = set().union(*(rendered_defaults(s) for s in settings))
        if said not in accepted:
            wrong.append(f"{name}: .env.example says Default: {said!r}, the code's default is one of {sorted(accepted)}")
    assert not wrong, "\n".join(wrong)


def test_env_example_values_are_valid_for_every_settings_class(
        documented: dict[str, DocumentedVariable], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in known_settings():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env in the working directory
    for cls in settings_classes():
        try:
            cls(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
        except Exception as exc:  # the message names the class and the pydantic errors
            pytest.fail(f"{cls.__module__}.{cls.__name__} rejects .env.example: {exc}")


def test_secrets_are_left_empty_or_placeholders(documented: dict[str, DocumentedVariable]) -> None:
    filled = [v.name for v in documented.values()
              if any(marker in v.name for marker in SECRET_MARKERS)
              and v.value not in ("", "[]", "change-me") and not v.value.startswith("<")]
    assert not filled, f".env.example must not ship secret values: {filled}"


def test_parser_rejects_a_line_that_is_neither_comment_nor_assignment(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("# fine\nFOO=1\nexport BAR=2\n")
    with pytest.raises(ValueError, match="bad.env:3"):
        parse_env_example(bad)
