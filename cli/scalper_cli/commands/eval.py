"""``scalper eval``: evaluate a model over a date window against the baselines, with a report.

By default the policy API runs it (``POST /v1/evaluations``, the trainer worker does the work) and
the command follows it with a progress bar; ``--out`` then downloads the report. ``--local`` runs
it in this process instead (DATABASE_URL and ARTIFACTS_DIR from the environment or ``.env``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from scalper_cli.api_client import ApiClientSettings, checked, client
from scalper_cli.commands.premium import load_premium_config
from scalper_cli.evaluation_report import download
from scalper_cli.followers import follow_evaluation
from scalper_cli.market_options import check_market, day_window
from scalper_shared.core.premium import PremiumModelConfig
from scalper_shared.schema.evaluation import (
    EvaluationAccepted,
    EvaluationMetrics,
    EvaluationStatus,
)
from scalper_shared.settings import ServiceSettings, load_settings

app = typer.Typer(help=__doc__)
console = Console()
errors = Console(stderr=True)


def request_body(model: str, start: date, end: date, symbols: str | None, seed: int, source: str,
                 checkpoints: bool, premium: dict[str, Any] | None = None, data_seed: int = 0,
                 data_edge: str = "none", fills: str = "model") -> dict[str, Any]:
    body: dict[str, Any] = {"model_id": model, "start": start.isoformat(), "end": end.isoformat(), "seed": seed,
                            "data_source": source, "checkpoints": checkpoints, "fills": fills}
    if premium is not None:
        body["premium"] = premium
    if source == "synthetic":
        body |= {"data_seed": data_seed, "data_edge": data_edge}
    if symbols:
        body["symbols"] = [s.strip() for s in symbols.split(",") if s.strip()]
    return body


def show(metrics: EvaluationMetrics) -> None:
    perf = metrics.performance
    style = "bold red" if perf.total_pnl < 0 else "bold green"
    console.print(f"[{style}]{metrics.summary}[/]", highlight=False)
    console.print(f"trades/day {metrics.trades_per_day.mean_per_day:.1f} | win rate {perf.win_rate} | "
                  f"profit factor {perf.profit_factor} | max drawdown ${perf.max_drawdown:,.2f} | "
                  f"PSR {perf.probabilistic_sharpe_ratio}", highlight=False)
    agent = metrics.fills.of("agent")
    if metrics.fills.mode == "real" and agent is not None:
        console.print(f"fills: {agent.real} of {agent.fills} of the agent's from real option bars "
                      f"({metrics.fills.option_bars} bars stored), the rest from the premium model", highlight=False)


def run_local(model: str, start: date, end: date, symbols: str | None, seed: int, source: str, checkpoints: bool,
              out: Path | None, premium: PremiumModelConfig | None = None, data_seed: int = 0, data_edge: str = "none",
              fills: str = "model") -> Path:
    from scalper_trainer.evaluation import run_evaluation

    settings = load_settings(ServiceSettings)
    out_dir = out or settings.artifacts_dir / "evaluations" / f"local-{model}-{start}-{end}"
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("evaluating", total=1.0)
        outcome = run_evaluation(
            model, start, end, artifacts_dir=settings.artifacts_dir, out_dir=out_dir,
            database_url=settings.database_url, symbols=[s.strip() for s in symbols.split(",")] if symbols else None,
            seed=seed, data_source=source, data_seed=data_seed, data_edge=data_edge, checkpoints=checkpoints,
            premium=premium, fills=fills,
            progress=lambda fraction, stage: bar.update(task, completed=fraction, description=stage))
    show(EvaluationMetrics.model_validate(outcome.metrics))
    return outcome.paths.html


@app.callback(invoke_without_command=True)
def evaluate(
    model: Annotated[str, typer.Option("--model", help="Model id (or, with --local, an artifact directory)")],
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD)")],
    end: Annotated[str, typer.Option("--to", help="Last day, inclusive")],
    local: Annotated[bool, typer.Option("--local", help="Run in this process, without the API")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Directory for the report")] = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols (default: the model's)")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random baseline and the bootstrap")] = 0,
    source: Annotated[str, typer.Option(help="database or synthetic")] = "database",
    checkpoints: Annotated[bool, typer.Option(help="Compare the training checkpoints")] = True,
    synthetic_seed: Annotated[int, typer.Option("--synthetic-seed", min=0,
                                                help="Seed of the synthetic market (--source synthetic)")] = 0,
    synthetic_edge: Annotated[str, typer.Option(
        "--synthetic-edge", help="Planted edge of the synthetic market: none or momentum (adds the edge_rule baseline)")
    ] = "none",
    poll_s: Annotated[float, typer.Option(help="Seconds between polls of the API")] = 1.0,
    premium_config: Annotated[Path | None, typer.Option(
        "--premium-config", help="PremiumModelConfig JSON to price with (default: the model's own)")] = None,
    fills: Annotated[str, typer.Option(
        "--fills", help="model, or real: fills from stored option bars (scalper ingest options) where they exist")
    ] = "model",
) -> None:
    """Evaluate --model over --from..--to against always-HOLD, random and momentum-rule baselines (and
    edge_rule on a synthetic market with --synthetic-edge momentum)."""
    first, last = day_window(start, end)
    check_market(source, synthetic_seed, synthetic_edge)
    if fills not in ("model", "real"):
        raise typer.BadParameter(f"--fills {fills!r}: model or real")
    if fills == "real" and source != "database":
        raise typer.BadParameter("--fills real needs --source database (real option bars are stored there)")
    premium = load_premium_config(premium_config) if premium_config is not None else None
    if local:
        report = run_local(model, first, last, symbols, seed, source, checkpoints, out, premium, synthetic_seed,
                           synthetic_edge, fills)
        console.print(f"report: {report}", highlight=False)
        return
    settings = load_settings(ApiClientSettings)
    with client(settings) as http:
        accepted = EvaluationAccepted.model_validate(checked(http.post(
            "/v1/evaluations", json=request_body(model, first, last, symbols, seed, source, checkpoints,
                                                 premium.model_dump(mode="json") if premium else None,
                                                 synthetic_seed, synthetic_edge, fills))))
        view = follow_evaluation(http, accepted.id, console, poll_s)
        if view.status is not EvaluationStatus.FINISHED or view.metrics is None:
            errors.print(f"[red]evaluation {view.id} failed:[/] {view.error}", highlight=False)
            raise typer.Exit(1)
        show(view.metrics)
        if out is not None:
            console.print(f"report: {download(http, view.id, out)}", highlight=False)
        else:
            console.print(f"report: {settings.api_url}{view.report_url}", highlight=False)
