"""``scalper docs``: write the generated reference pages (``docs/streams.md``, ``docs/configuration.md``).

They are rendered from the stream registry and the config models (:mod:`scalper_cli.reference_docs`);
``--check`` writes nothing and exits 1 naming every page that differs from its source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalper_cli.reference_docs import pages


def docs(
    directory: Annotated[Path, typer.Option("--dir", help="Where the pages go (the repository's docs/)")] = Path("docs"),
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 if a page is stale")] = False,
) -> None:
    """Write the reference pages generated from the stream registry and the config models (--check: only compare)."""
    if not directory.is_dir():
        typer.echo(f"no directory {directory}: run from the repository root or pass --dir", err=True)
        raise typer.Exit(2)
    stale = []
    for name, render in pages().items():
        path = directory / name
        text = render()
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(str(path))
        if not check:
            path.write_text(text, encoding="utf-8")
    if check and stale:
        typer.echo(f"stale generated docs: {', '.join(stale)} (run `scalper docs`)", err=True)
        raise typer.Exit(1)
    typer.echo(f"{'stale' if check else 'written'}: {', '.join(stale)}" if stale else "generated docs are up to date")
