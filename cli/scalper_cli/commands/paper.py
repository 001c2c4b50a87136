"""``scalper paper``: one stored day through the running stack's live services, against the backtest.

Promotes ``--model`` over REST (``SCALPER_API_URL``, ``SCALPER_API_KEY`` with the admin scope), waits
until the policy serves it, replays ``--date`` in lockstep at ``--speed`` (see :mod:`scalper_cli.paper`),
then prints the trades, the comparison with the offline backtest and the bar-to-order latency.
Exits 1 when the paper trades differ from the backtest, naming the first differing trade and its cause.
The paper/parity logic is :mod:`scalper_trainer.evaluation.paper`; this module only calls and prints it.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from scalper_cli import stack
from scalper_cli.api_client import ApiClientSettings, checked, client
from scalper_cli.paper_table import render
from scalper_cli.settings import StackSettings
from scalper_ingestion.replay import parse_speed, replay_days
from scalper_shared.settings import load_settings
from scalper_trainer.evaluation.paper import PaperTarget, run_paper_day

console = Console()


def promote_and_wait(model_id: str, timeout_s: float = 60.0) -> Path:
    """Promote ``model_id`` and wait until the policy serves it; returns its artifact directory."""
    with client(load_settings(ApiClientSettings)) as http:
        view = checked(http.post(f"/v1/models/{model_id}/promote"))
        deadline = time.monotonic() + timeout_s
        while checked(http.get("/v1/policy/model")).get("model_id") != model_id:
            if time.monotonic() > deadline:
                raise typer.BadParameter(f"the policy did not serve {model_id} within {timeout_s:.0f}s")
            time.sleep(0.5)
    return Path(view["artifact_path"])


def target_of_stack(artifact_dir: Path) -> PaperTarget:
    from scalper_features.settings import FeaturesSettings

    settings = load_settings(StackSettings)
    state = stack.load_state(settings)
    if state is None:
        raise typer.BadParameter("the stack is not up (scalper stack up)")
    features = load_settings(FeaturesSettings)
    return PaperTarget(state.infrastructure.redis_url, state.infrastructure.database_url, settings.stream_prefix,
                       features.symbol_list, artifact_dir,
                       stream_maxlen=settings.stream_maxlen)


def paper(
    model: Annotated[str, typer.Option("--model", help="Model id to promote and trade")],
    day: Annotated[str, typer.Option("--date", help="Stored day to replay (YYYY-MM-DD)")],
    speed: Annotated[str, typer.Option(help="Replay speed factor, or max")] = "max",
) -> None:
    """Replay a stored day through the live services (paper broker) and compare with the backtest."""
    artifact_dir = promote_and_wait(model)
    result = run_paper_day(target_of_stack(artifact_dir), model, date.fromisoformat(day), parse_speed(speed),
                           replay=replay_days)
    render(result)
    if not result.exact:
        raise typer.Exit(1)
