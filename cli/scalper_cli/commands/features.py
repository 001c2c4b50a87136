"""``scalper features build``: batch features from the bars table into the feature store and table.

Configuration (environment or ``.env``): DATABASE_URL, FEATURES_DIR (default var/features).
The trainer reads the store with ``scalper_shared.core.features.store.load_feature_days``.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from scalper_features.build import build_features
from scalper_features.settings import SYMBOL_PATTERN, FeaturesSettings
from scalper_shared.core.calendar import trading_days
from scalper_shared.core.features import FEATURE_SPEC
from scalper_shared.db import make_engine, migrate
from scalper_shared.settings import load_settings

app = typer.Typer(help=__doc__, no_args_is_help=True)
console = Console()


def _day(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


def _symbols(value: str) -> list[str]:
    import re

    if not re.fullmatch(SYMBOL_PATTERN, value):
        raise typer.BadParameter(f"{value!r} is not a comma-separated list of tickers such as SPY,QQQ,I:SPX")
    return value.split(",")


@app.command()
def build(
    symbols: Annotated[str, typer.Option("--symbols", help="Comma-separated tickers, e.g. SPY,QQQ,I:SPX")],
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD, New York date)")],
    end: Annotated[str, typer.Option("--to", help="Last day, inclusive")],
    out: Annotated[Path | None, typer.Option("--out", help="Feature store root (default FEATURES_DIR)")] = None,
) -> None:
    """Compute the features of every session in [--from, --to] from the bars table; write the store."""
    symbol_list, first, last = _symbols(symbols), _day(start), _day(end)
    if last < first:
        raise typer.BadParameter(f"--to {end} is before --from {start}")
    settings = load_settings(FeaturesSettings)
    root = out or settings.features_dir
    engine = make_engine(settings.database_url)
    migrate(engine)
    sessions = len(trading_days(first, last))
    columns = (TextColumn("[bold]features[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("", total=sessions)
            report = build_features(engine, root, symbol_list, first, last,
                                    on_day=lambda day: progress.update(task, advance=1, description=str(day)))
    finally:
        engine.dispose()
    console.print(f"{report.sessions} sessions, {report.symbol_days} symbol-days, {report.rows} rows "
                  f"(spec {FEATURE_SPEC.spec_hash[:16]}) -> {root}")
