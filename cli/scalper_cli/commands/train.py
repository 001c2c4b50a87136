"""``scalper train``: start a training job on the policy API and (with ``--wait``) follow it.

The API is ``SCALPER_API_URL`` (default ``http://127.0.0.1:8000``) and the key ``SCALPER_API_KEY``
(a key with the ``train`` and ``read`` scopes), from the environment or ``.env``.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from scalper_cli.api_client import ApiClientSettings, checked, client
from scalper_cli.commands.premium import load_premium_config
from scalper_cli.followers import follow_training
from scalper_cli.market_options import check_market
from scalper_shared.schema.training import JobState, TrainingJobAccepted, TrainingJobView
from scalper_shared.settings import load_settings

app = typer.Typer(help=__doc__)
console = Console()
errors = Console(stderr=True)


def request_body(symbols: str, start: date, end: date, validation_days: int, timesteps: int, seed: int,
                 n_envs: int | None, source: str, preset: str = "default", validation_from: date | None = None,
                 validation_to: date | None = None) -> dict[str, Any]:
    """The ``TrainConfig`` JSON: train on ``start..end``, validate on ``validation_from..validation_to``
    (default: the ``validation_days`` calendar days after ``end``). ``n_envs`` None leaves the preset's."""
    first = validation_from or end + timedelta(days=1)
    body: dict[str, Any] = {
        "preset": preset, "symbols": [s.strip() for s in symbols.split(",") if s.strip()],
        "train_from": start.isoformat(), "train_to": end.isoformat(),
        "validation_from": first.isoformat(),
        "validation_to": (validation_to or first + timedelta(days=validation_days - 1)).isoformat(),
        "total_timesteps": timesteps, "seed": seed, "data_source": source}
    if n_envs is not None:
        body["n_envs"] = n_envs
    return body


def render(view: TrainingJobView) -> None:
    from scalper_cli.diagnostics_table import render_diagnostics

    render_diagnostics(console, view.diagnostics, view.warnings, f"job {view.id}: {view.state}")
    if view.model_id:
        console.print(f"model: {view.model_id}", highlight=False)
    if view.error:
        errors.print(f"[red]error:[/] {view.error}", highlight=False)


@app.callback(invoke_without_command=True)
def train(
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols")] = "SPY,QQQ",
    start: Annotated[str, typer.Option("--from", help="First training day (YYYY-MM-DD)")] = "2025-07-01",
    end: Annotated[str, typer.Option("--to", help="Last training day (YYYY-MM-DD)")] = "2025-08-29",
    validation_days: Annotated[int, typer.Option(help="Held-out calendar days after --to")] = 14,
    timesteps: Annotated[int, typer.Option(help="Environment steps to train")] = 50_000,
    seed: Annotated[int, typer.Option()] = 0,
    n_envs: Annotated[int | None, typer.Option(help="Parallel environments (default: the preset's)")] = None,
    source: Annotated[str, typer.Option(help="database (import bars first) or synthetic")] = "database",
    preset: Annotated[str, typer.Option(help="Named preset: default, seed or legacy")] = "default",
    validation_from: Annotated[str | None, typer.Option("--validation-from", help="First validation day "
                                                      "(default: the day after --to)")] = None,
    validation_to: Annotated[str | None, typer.Option("--validation-to", help="Last validation day "
                                                    "(default: --validation-days after the first)")] = None,
    local: Annotated[bool, typer.Option("--local", help="Train in this process, without the stack")] = False,
    out: Annotated[Path, typer.Option("--out", help="--local: where diagnostics.json and model_id go")] = Path(
        "var/local-training"),
    idempotency_key: Annotated[str | None, typer.Option(help="Repeat to get the same job back")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job with a progress bar")] = False,
    poll_s: Annotated[float, typer.Option(help="Seconds between polls with --wait")] = 2.0,
    premium_config: Annotated[Path | None, typer.Option(
        "--premium-config", help="PremiumModelConfig JSON (`scalper premium calibrate`); saved with the model")] = None,
    synthetic_seed: Annotated[int, typer.Option("--synthetic-seed", min=0,
                                                help="Seed of the synthetic market (--source synthetic)")] = 0,
    synthetic_edge: Annotated[str, typer.Option(
        "--synthetic-edge", help="Planted edge of the synthetic market: none or momentum (--source synthetic)")
    ] = "none",
) -> None:
    """Start a training job (202 with its id); with --wait, show progress and the diagnostics.
    With --local, run it here on the worker's code path (needs only PostgreSQL)."""
    body = request_body(symbols, _day(start, "--from"), _day(end, "--to"), validation_days, timesteps, seed, n_envs,
                        source, preset, _day(validation_from, "--validation-from") if validation_from else None,
                        _day(validation_to, "--validation-to") if validation_to else None)
    if premium_config is not None:
        body["premium"] = load_premium_config(premium_config).model_dump(mode="json")
    check_market(source, synthetic_seed, synthetic_edge)
    if source == "synthetic":
        body |= {"data_seed": synthetic_seed, "data_edge": synthetic_edge}
    if local:
        train_here(body, out)
        return
    settings = load_settings(ApiClientSettings)
    with client(settings) as http:
        accepted = TrainingJobAccepted.model_validate(checked(http.post(
            "/v1/training-jobs", json=body, headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex})))
        console.print(f"training job {accepted.id} {accepted.state}", highlight=False)
        if not wait:
            return
        view = follow_training(http, accepted.id, console, poll_s)
        render(view)
        if view.state is not JobState.FINISHED:
            raise typer.Exit(1)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


def train_here(body: dict[str, Any], out: Path) -> None:
    """``--local``: validate the config, run it in this process with a progress bar, print the table."""
    import signal

    from pydantic import ValidationError

    from scalper_cli.diagnostics_table import render_diagnostics
    from scalper_shared.db import make_engine, migrate
    from scalper_shared.schema.training import TrainConfig
    from scalper_trainer.diagnostics import warnings_of
    from scalper_trainer.env.bundle import MissingBars
    from scalper_trainer.local import StopFlag, train_locally
    from scalper_trainer.settings import TrainerSettings

    try:
        config = TrainConfig.model_validate(body)
    except ValidationError as error:
        errors.print(f"[red]invalid training config:[/] {error.errors()[0]['msg']}", highlight=False)
        raise typer.Exit(2) from None
    settings = load_settings(TrainerSettings)
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    job_id = f"local-{uuid.uuid4().hex[:16]}"
    stop = StopFlag()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.event.set())
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(job_id, total=config.total_timesteps, rate="")

            def show(meta: dict[str, Any]) -> None:
                progress = meta.get("progress") or {}
                bar.update(task, completed=progress.get("steps", 0), description=f"{job_id} {meta.get('state', '')}",
                           rate=f"{progress.get('steps_per_second', 0):,.0f} steps/s")

            result = train_locally(config, job_id=job_id, engine=engine, artifacts_dir=settings.artifacts_dir,
                                   out_dir=out, on_status=show, stop=stop, torch_threads=settings.torch_threads)
    except MissingBars as error:
        errors.print(f"[red]error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        engine.dispose()
    render_diagnostics(console, result.diagnostics, warnings_of(result.diagnostics),
                       f"local job {job_id}: {result.state.value}")
    console.print(f"diagnostics: {out / 'diagnostics.json'}", highlight=False)
    if result.model_id is None:
        raise typer.Exit(1)
    console.print(f"model: {result.model_id} (id in {out / 'model_id'})", highlight=False)
