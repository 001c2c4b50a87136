"""HTTP access to the services' REST APIs for CLI commands: URLs and key from env/``.env``.

``SCALPER_API_URL`` is the policy API (training, models, policy actions), ``SCALPER_EXECUTION_URL``
the execution service (positions, orders, risk); ``SCALPER_API_KEY`` a key with the scopes the
command needs (``scalper keys new`` makes one).
"""

from __future__ import annotations

from typing import Any

import httpx
import typer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

errors = Console(stderr=True)


class ApiClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    api_url: str = Field("http://127.0.0.1:8000", validation_alias="SCALPER_API_URL")
    execution_url: str = Field("http://127.0.0.1:8003", validation_alias="SCALPER_EXECUTION_URL")
    api_key: str = Field("", validation_alias="SCALPER_API_KEY")
    timeout_s: float = Field(30.0, gt=0, validation_alias="SCALPER_API_TIMEOUT_S")


def client(settings: ApiClientSettings, base_url: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=base_url or settings.api_url, headers={"X-API-Key": settings.api_key},
                        timeout=settings.timeout_s)


class ApiError(typer.Exit):
    """A call answered with an error (already printed); exits 1, and says what when shown."""

    def __init__(self, message: str) -> None:
        super().__init__(1)
        self.message = message

    def __str__(self) -> str:
        return self.message


def checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a 2xx response; otherwise print the status and body and raise :class:`ApiError`."""
    call = f"{response.request.method} {response.request.url.path}"
    if response.status_code >= 400:
        errors.print(f"[bold red]error {response.status_code}:[/] {response.text}", highlight=False)
        raise ApiError(f"{call} -> {response.status_code}: {response.text[:500]}")
    body = response.json()
    if not isinstance(body, dict):
        errors.print(f"[bold red]error:[/] expected a JSON object from {response.url}, got {type(body).__name__}",
                     highlight=False)
        raise ApiError(f"{call}: expected a JSON object, got {type(body).__name__}")
    return body
