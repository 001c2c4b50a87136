"""The generated reference pages match their sources, and every config field is described."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from scalper_cli.main import app
from scalper_cli.reference_docs import config_models, configuration_page, missing_descriptions, pages

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_committed_reference_pages_are_what_their_sources_render() -> None:
    for name, render in pages().items():
        assert (DOCS / name).read_text(encoding="utf-8") == render(), f"docs/{name} is stale: run `scalper docs`"


def test_every_field_of_every_documented_config_has_a_description() -> None:
    assert missing_descriptions() == [], "describe these fields (Field(description=...) or an attribute docstring)"


def test_the_configuration_page_documents_every_field_of_each_config() -> None:
    page = configuration_page()
    for model in config_models():
        section = page.split(f"## `{model.__name__}`", 1)[1].split("\n## ", 1)[0]
        assert [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")] == list(
            model.model_fields)


def test_scalper_docs_check_fails_on_a_stale_page_and_passes_once_written(tmp_path: Path) -> None:
    (tmp_path / "streams.md").write_text("hand-edited\n", encoding="utf-8")
    stale = CliRunner().invoke(app, ["docs", "--dir", str(tmp_path), "--check"])
    assert stale.exit_code == 1 and "streams.md" in stale.output and "configuration.md" in stale.output
    assert (tmp_path / "streams.md").read_text(encoding="utf-8") == "hand-edited\n"
    assert CliRunner().invoke(app, ["docs", "--dir", str(tmp_path)]).exit_code == 0
    assert CliRunner().invoke(app, ["docs", "--dir", str(tmp_path), "--check"]).exit_code == 0


def test_scalper_docs_names_a_missing_directory_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["docs", "--dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no directory" in result.output and "Traceback" not in result.output
