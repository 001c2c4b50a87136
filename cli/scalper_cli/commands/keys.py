"""``scalper keys new``: make an API key and the hashed entry to put in ``API_KEYS``.

The services store only the SHA-256 of a key; the key itself is printed once and never saved.
``API_KEYS`` is a JSON list of every key's entry: the command prints the whole new value (the
entries already in the env file, or in the environment, plus this one), and with ``--append``
writes it into the env file (``.env``) itself.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any

import typer
from dotenv import dotenv_values, set_key
from pydantic import TypeAdapter, ValidationError

from scalper_shared.runtime.api_security import ApiKeyRecord, Scope, hash_key

app = typer.Typer(help=__doc__, no_args_is_help=True)
VARIABLE = "API_KEYS"
_RECORDS = TypeAdapter(list[ApiKeyRecord])


def current_entries(env_file: Path) -> tuple[list[dict[str, Any]], str]:
    """The ``API_KEYS`` entries in force and where they come from: ``env_file`` when it sets the
    variable, else the environment, else none."""
    if env_file.is_file() and dotenv_values(env_file).get(VARIABLE) is not None:
        raw, source = dotenv_values(env_file)[VARIABLE] or "[]", str(env_file)
    elif os.environ.get(VARIABLE):
        raw, source = os.environ[VARIABLE], f"the {VARIABLE} environment variable"
    else:
        return [], "nowhere (no key yet)"
    try:
        records = _RECORDS.validate_json(raw)
    except ValidationError as exc:
        raise typer.BadParameter(f"{VARIABLE} in {source} is not a JSON list of key entries: "
                                 f"{exc.errors()[0]['msg']}; fix or empty it first", param_hint="--env-file") from None
    return [entry_of(r) for r in records], source


def entry_of(record: ApiKeyRecord) -> dict[str, Any]:
    return {"name": record.name, "sha256": record.sha256, "scopes": sorted(s.value for s in record.scopes)}


@app.command()
def new(
    name: Annotated[str, typer.Option(help="A name for the key (shows in logs and errors)")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read,infer,train,trade,admin")] = "read",
    append: Annotated[bool, typer.Option("--append", help="Write the new API_KEYS value into --env-file")] = False,
    env_file: Annotated[Path, typer.Option("--env-file", help="The env file to read (and with --append write)")] = Path(".env"),
) -> None:
    """Print a new key, its API_KEYS entry and the whole new API_KEYS value; --append writes it to .env."""
    try:
        wanted = frozenset(Scope(s.strip()) for s in scopes.split(",") if s.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; scopes are {', '.join(s.value for s in Scope)}") from None
    entries, source = current_entries(env_file)
    if any(e["name"] == name for e in entries):
        raise typer.BadParameter(f"a key named {name!r} is already in {VARIABLE} ({source}); pick another name",
                                 param_hint="--name")
    key = "sk_" + secrets.token_urlsafe(32)
    entry = entry_of(ApiKeyRecord(name=name, sha256=hash_key(key), scopes=wanted))
    value = json.dumps([*entries, entry], separators=(",", ":"))
    typer.echo(f"key (shown once): {key}")
    typer.echo(f"API_KEYS entry:   {json.dumps(entry)}")
    if append:
        set_key(env_file, VARIABLE, value, quote_mode="always")
        typer.echo(f"{VARIABLE} in {env_file} now holds {len(entries) + 1} key(s): "
                   f"{', '.join(e['name'] for e in [*entries, entry])}. Restart the services to load it.")
        return
    typer.echo(f"whole {VARIABLE} value (the {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} from {source} "
               f"+ this one); put this line in .env, or rerun with --append:")
    typer.echo(f"{VARIABLE}='{value}'")
