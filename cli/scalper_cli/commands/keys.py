"""``scalper keys new``: make an API key and the hashed entry to put in ``API_KEYS``.

The services store only the SHA-256 of a key; the key itself is printed once and never saved.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated

import typer

from scalper_shared.runtime.api_security import ApiKeyRecord, Scope, hash_key

app = typer.Typer(help=__doc__, no_args_is_help=True)


@app.command()
def new(
    name: Annotated[str, typer.Option(help="A name for the key (shows in logs and errors)")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read,infer,train,trade,admin")] = "read",
) -> None:
    """Print a new key and its API_KEYS entry (JSON)."""
    try:
        wanted = frozenset(Scope(s.strip()) for s in scopes.split(",") if s.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; scopes are {', '.join(s.value for s in Scope)}") from None
    key = "sk_" + secrets.token_urlsafe(32)
    record = ApiKeyRecord(name=name, sha256=hash_key(key), scopes=wanted)
    entry = {"name": record.name, "sha256": record.sha256, "scopes": sorted(s.value for s in record.scopes)}
    typer.echo(f"key (shown once): {key}")
    typer.echo(f"API_KEYS entry:   {json.dumps(entry)}")
