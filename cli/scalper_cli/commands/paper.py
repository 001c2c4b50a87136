"""``scalper paper``: one stored day through the services in a namespace of their own, against the backtest.

Runs :func:`scalper_trainer.evaluation.paper.run_paper_day` with the services started in this process
(:mod:`scalper_cli.paper_services`) on the run's own database, stream prefix and replay clock: the live
stack is never touched and needs not be up (Redis and PostgreSQL must answer: the stack's, else
``REDIS_URL`` / ``DATABASE_URL``). Prints paper and backtest trades side by side, the first difference
and its cause, and the bar-to-order latency; exits 1 on any difference.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from scalper_cli import stack
from scalper_cli.paper_services import run_paper
from scalper_cli.paper_table import render
from scalper_cli.settings import StackSettings
from scalper_ingestion.replay import parse_speed
from scalper_shared.core.risk import RiskConfig
from scalper_shared.settings import load_settings
from scalper_trainer.evaluation.paper import PaperError, PaperRequest
from scalper_trainer.evaluation.run import load_artifact


def paper_request(settings: StackSettings, model: str, day: date, speed: float = 0.0,
                  risk: RiskConfig | None = None) -> PaperRequest:
    """The request for ``model`` (an id under the artifacts directory, or an artifact directory) on
    ``day``, on the stack's Redis and PostgreSQL when it is up, else the configured ones."""
    state = stack.load_state(settings)
    redis_url, database_url = ((state.infrastructure.redis_url, state.infrastructure.database_url) if state
                               else (settings.redis_url, settings.database_url))
    artifacts_dir = settings.artifacts_dir if settings.artifacts_dir.is_absolute() else \
        settings.var_dir.parent / settings.artifacts_dir
    artifact = load_artifact(model, artifacts_dir)
    return PaperRequest(artifact.directory, day, redis_url, database_url, settings.stream_prefix, speed, risk,
                        stream_maxlen=settings.stream_maxlen)


def paper(
    model: Annotated[str, typer.Option("--model", help="Model id (under the artifacts directory) or artifact directory")],
    day: Annotated[str, typer.Option("--date", help="Stored day to replay (YYYY-MM-DD)")],
    speed: Annotated[str, typer.Option(help="Replay speed factor, or max")] = "max",
    risk_config: Annotated[Path | None, typer.Option(
        "--risk-config", help="Execution trades under this RiskConfig JSON instead of the model's "
                              "(a what-if; the backtest keeps the model's, so the comparison shows the effect)")] = None,
) -> None:
    """Replay a stored day through the services (paper broker, own namespace) and compare with the backtest."""
    try:
        risk = RiskConfig.model_validate_json(risk_config.read_text()) if risk_config else None
        request = paper_request(load_settings(StackSettings), model, date.fromisoformat(day), parse_speed(speed), risk)
        result = run_paper(request)
    except (PaperError, FileNotFoundError, ValueError) as exc:
        typer.secho(f"paper: {exc}".splitlines()[0], fg="red", err=True)
        raise typer.Exit(1) from None
    render(result)
    if not result.exact:
        raise typer.Exit(1)
