"""``scalper stack up|down|status|logs``: the local stack as detached processes.

Configuration (environment or ``.env``): REDIS_URL, DATABASE_URL, SCALPER_VAR_DIR (default var),
STACK_READY_TIMEOUT_S (60), STACK_STOP_TIMEOUT_S (20), SCALPER_EMBEDDED_REDIS_PORT (0: free port),
and each service's <SERVICE>_HTTP_PORT (policy 8000, ingestion 8001, features 8002,
execution 8003, trainer 8004).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scalper_cli import stack
from scalper_cli.infra import StackError
from scalper_cli.processes import StopResult, tail
from scalper_cli.settings import StackSettings
from scalper_shared.settings import load_settings

app = typer.Typer(help=__doc__, no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def _settings() -> StackSettings:
    return load_settings(StackSettings)


def _fail(exc: Exception) -> typer.Exit:
    errors.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True, highlight=False)
    return typer.Exit(1)


def render_up(report: stack.UpReport) -> None:
    table = Table(title=f"stack up: {len(report.services)} services ready in {report.elapsed_s:.1f}s")
    for column in ("service", "pid", "port", "action", "ready after (s)"):
        table.add_column(column)
    for s in report.services:
        table.add_row(s.name, str(s.pid), str(s.port), s.action,
                      "-" if s.ready_after_s is None else f"{s.ready_after_s:.1f}")
    console.print(table)
    render_infrastructure(stack.infra_status(stack.StackState(infrastructure=report.infrastructure)))


def render_infrastructure(rows: list[stack.InfraStatus]) -> None:
    for row in rows:
        origin = f"embedded, pid {row.embedded_pid}, alive={row.alive}" if row.embedded_pid else "external"
        console.print(f"{row.name}: {row.url} ({origin})", highlight=False, markup=False, soft_wrap=True)


def render_down(results: list[StopResult]) -> None:
    table = Table(title="stack down")
    for column in ("process", "pid", "outcome"):
        table.add_column(column)
    for r in results:
        table.add_row(r.name, str(r.pid), r.outcome)
    console.print(table)


def render_status(result: stack.StackStatus) -> None:
    table = Table(title="stack status")
    for column in ("service", "pid", "alive", "healthz", "readyz", "port"):
        table.add_column(column)
    for s in result.services:
        table.add_row(s.name, str(s.pid or "-"), "yes" if s.alive else "no",
                      str(s.healthz or "-"), str(s.readyz or "-"), str(s.port))
    console.print(table)
    render_infrastructure(result.infrastructure)


@app.command()
def up() -> None:
    """Start Redis/PostgreSQL if none answers, migrate, start every service, wait until all are ready."""
    try:
        report = stack.up(_settings())
    except StackError as exc:
        raise _fail(exc) from None
    render_up(report)


@app.command()
def down() -> None:
    """Stop every service (SIGTERM, then SIGKILL after STACK_STOP_TIMEOUT_S) and the embedded servers."""
    results = stack.down(_settings())
    render_down(results)
    if any(r.outcome == "killed" for r in results):
        raise typer.Exit(1)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """Each service's PID, liveness, /healthz and /readyz; infrastructure URLs. Exit 3 unless all are ready."""
    result = stack.status(_settings())
    if as_json:
        doc = {"services": [asdict(s) for s in result.services],
               "infrastructure": [asdict(i) for i in result.infrastructure], "ok": result.ok}
        typer.echo(json.dumps(doc, indent=2))
    else:
        render_status(result)
    if not result.ok:
        raise typer.Exit(3)


@app.command()
def logs(
    service: Annotated[str | None, typer.Argument(help="Service (or redis/postgres); all when omitted")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines to show from the end")] = 50,
) -> None:
    """Show the last lines of a service's log (var/log/<service>.log), optionally following it."""
    settings = _settings()
    available = stack.log_names(settings)
    if service is not None and service not in available:
        raise _fail(StackError(f"no log for {service!r}; available: {', '.join(available) or 'none'}"))
    names = [service] if service else available
    prefix = len(names) > 1
    for name in names:
        for line in tail(settings.log_file(name), lines):
            typer.echo(f"{name} | {line}" if prefix else line)
    if follow:
        _follow(settings, names, prefix)


def _follow(settings: StackSettings, names: list[str], prefix: bool) -> None:
    handles = {}
    for name in names:
        handle = open(settings.log_file(name), encoding="utf-8", errors="replace")  # noqa: SIM115
        handle.seek(0, 2)
        handles[name] = handle
    try:
        while True:
            idle = True
            for name, handle in handles.items():
                for line in iter(handle.readline, ""):
                    idle = False
                    typer.echo(f"{name} | {line.rstrip()}" if prefix else line.rstrip())
            if idle:
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for handle in handles.values():
            handle.close()
