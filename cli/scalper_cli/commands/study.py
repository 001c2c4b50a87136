"""``scalper study``: hyperparameter and reward studies with Optuna on the trainer workers.

``create`` posts a study to the policy API (``SCALPER_API_URL``, a key with the ``train`` and
``read`` scopes); every trial is a job on the ``training`` queue, run by any trainer worker.
``status``, ``best`` and ``report`` read it back. ``report --local`` builds the HTML report here
from ``DATABASE_URL`` and ``ARTIFACTS_DIR`` (needs the trainer package), for a study still running.
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from scalper_cli.api_client import ApiClientSettings, checked, client
from scalper_shared.schema.studies import StudyAccepted, StudyView
from scalper_shared.settings import load_settings

app = typer.Typer(help=__doc__, no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def request_body(name: str, preset: str, trials: int, timesteps: int, symbols: str, start: str, end: str,
                 folds: int, space: Path | None, seed: int, source: str,
                 checkpoint_every: int | None, pruner: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``StudyRequest`` JSON; the search space file (YAML or JSON) is read and checked here."""
    body: dict[str, Any] = {
        "name": name, "preset": preset, "trials": trials, "timesteps": timesteps,
        "symbols": [s.strip() for s in symbols.split(",") if s.strip()], "start": _day(start, "--from"),
        "end": _day(end, "--to"), "folds": folds, "seed": seed, "data_source": source}
    if checkpoint_every is not None:
        body["checkpoint_every"] = checkpoint_every
    if pruner:
        body["pruner"] = pruner
    if space is not None:
        from pydantic import ValidationError

        from scalper_shared.studies import load_space

        try:
            body["space"] = load_space(space).model_dump(mode="json")
        except (ValueError, ValidationError) as error:
            errors.print(f"[red]bad search space {space}:[/] {error}", highlight=False)
            raise typer.Exit(2) from None
    return body


def _day(text: str, option: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


def follow(http: httpx.Client, name: str, poll_s: float) -> StudyView:
    """Poll the study until every trial ended and its report is written (the best model registered)."""
    last = ""
    while True:
        view = StudyView.model_validate(checked(http.get(f"/v1/studies/{name}")))
        line = ", ".join(f"{n} {state}" for state, n in sorted(view.states.items()))
        if line != last:
            console.print(f"study {name}: {line}", highlight=False)
            last = line
        if view.finished and view.report:
            return view
        time.sleep(poll_s)


def render_status(view: StudyView) -> None:
    table = Table(title=f"study {view.name}: {view.objective}")
    for column in ("#", "slot", "state", "value", "setup BUY", "trades/day", "Spearman", "parameters"):
        table.add_column(column, overflow="fold")
    for t in view.trials:
        table.add_row(str(t.number), str(t.slot), t.state, _money(t.value),
                      _fmt(t.attrs.get("setup_buy_rate")), _fmt(t.attrs.get("trades_per_day")),
                      _fmt(t.attrs.get("reward_spearman")),
                      ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items()))
    console.print(table)
    states = ", ".join(f"{n} {s}" for s, n in sorted(view.states.items()))
    console.print(f"{states} of {view.trials_requested}; {'ended' if view.finished else 'running'}", highlight=False)
    render_best(view)


def render_best(view: StudyView) -> None:
    best = view.best
    if best is None:
        console.print("no trial completed yet", highlight=False)
        return
    walk = best.attrs.get("walk_forward", {})
    console.print(f"best trial {best.number}: {_money(best.value)} per account-day "
                  f"(interval {_money(walk.get('ci_low'))} .. {_money(walk.get('ci_high'))}, "
                  f"{walk.get('days', 0)} validation days); model {view.best_model_id or '-'}",
                  highlight=False)
    for name, b in best.attrs.get("baselines", {}).items():
        console.print(f"  vs {name}: {_money(b['mean_daily_difference'])} per day "
                      f"[{_money(b['ci_low'])} .. {_money(b['ci_high'])}]", highlight=False)
    console.print(json.dumps(best.params, indent=1), highlight=False)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _money(value: Any) -> str:
    if value is None:
        return "-"
    return f"-${abs(value):,.2f}" if value < 0 else f"${value:,.2f}"


@app.command()
def create(
    name: Annotated[str, typer.Option(help="Unique study name (also the best model's name)")],
    trials: Annotated[int, typer.Option(help="Number of trials")] = 20,
    timesteps: Annotated[int, typer.Option(help="Training steps per fold of every trial")] = 50_000,
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols")] = "SPY,QQQ",
    start: Annotated[str, typer.Option("--from", help="First day of the window (YYYY-MM-DD)")] = "2025-08-11",
    end: Annotated[str, typer.Option("--to", help="Last day of the window (YYYY-MM-DD)")] = "2025-10-31",
    folds: Annotated[int, typer.Option(help="Walk-forward folds (the window is cut in folds + 1 blocks)")] = 2,
    preset: Annotated[str, typer.Option(help="Preset the search starts from")] = "default",
    space: Annotated[Path | None, typer.Option(help="Search space YAML/JSON (default: the shipped one)")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    source: Annotated[str, typer.Option(help="database (import bars first) or synthetic")] = "database",
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint (and pruning) interval; "
                                                         "default timesteps / 4")] = None,
    pruning: Annotated[bool, typer.Option("--pruning/--no-pruning", help="Optuna's MedianPruner")] = True,
    pruner_startup_trials: Annotated[int, typer.Option(help="Trials that end before any pruning")] = 2,
    pruner_warmup_steps: Annotated[int, typer.Option(help="No pruning before this reported step "
                                                     "(fold x timesteps + checkpoint step)")] = 0,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the study until it ends")] = False,
    poll_s: Annotated[float, typer.Option(help="Seconds between polls with --wait")] = 5.0,
) -> None:
    """Create a study; its trials run on the trainer workers."""
    pruner = {"enabled": pruning, "n_startup_trials": pruner_startup_trials, "n_warmup_steps": pruner_warmup_steps}
    body = request_body(name, preset, trials, timesteps, symbols, start, end, folds, space, seed, source,
                        checkpoint_every, pruner)
    with client(load_settings(ApiClientSettings)) as http:
        accepted = StudyAccepted.model_validate(checked(http.post("/v1/studies", json=body)))
        console.print(f"study {accepted.name}: {len(accepted.trial_jobs)} trial jobs queued", highlight=False)
        if wait:
            render_status(follow(http, name, poll_s))


@app.command()
def status(name: Annotated[str, typer.Argument(help="Study name")]) -> None:
    """Every trial: state, value, attributes and parameters; the best trial."""
    with client(load_settings(ApiClientSettings)) as http:
        render_status(StudyView.model_validate(checked(http.get(f"/v1/studies/{name}"))))


@app.command()
def best(name: Annotated[str, typer.Argument(help="Study name")],
         as_json: Annotated[bool, typer.Option("--json", help="The best trial as JSON")] = False) -> None:
    """The best trial: value, interval, baselines, parameters and its registered model."""
    with client(load_settings(ApiClientSettings)) as http:
        view = StudyView.model_validate(checked(http.get(f"/v1/studies/{name}")))
    if as_json:
        console.print_json(view.model_dump_json(include={"best", "best_model_id"}))
        return
    render_best(view)
    if view.best is None:
        raise typer.Exit(1)


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="Study name")],
    out: Annotated[Path | None, typer.Option(help="Where to write the HTML (default var/reports/study-NAME.html)")] = None,
    local: Annotated[bool, typer.Option("--local", help="Build it here from DATABASE_URL and ARTIFACTS_DIR")] = False,
) -> None:
    """Write the study's HTML report (Optuna's figures, best trial, walk-forward P&L vs baselines)."""
    target = out or Path("var/reports") / f"study-{name}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    if local:
        _report_here(name, target)
    else:
        with client(load_settings(ApiClientSettings)) as http:
            response = http.get(f"/v1/studies/{name}/report")
            if response.status_code >= 400:
                checked(response)
            target.write_bytes(response.content)
    console.print(f"report: {target}", highlight=False)


def _report_here(name: str, target: Path) -> None:
    import tempfile

    from scalper_shared import studies
    from scalper_shared.db import make_engine
    from scalper_trainer.settings import TrainerSettings
    from scalper_trainer.studies.report import write_study_report

    settings = load_settings(TrainerSettings)
    study = studies.load(studies.open_storage(settings.database_url), name)
    if study is None:
        errors.print(f"[red]error:[/] no study {name!r}", highlight=False)
        raise typer.Exit(1)
    engine = make_engine(settings.database_url)
    try:
        with tempfile.TemporaryDirectory() as directory:
            target.write_bytes(write_study_report(study, engine, Path(directory)).read_bytes())
    finally:
        engine.dispose()
