"""``scalper data``: what the bars table holds, checked against the market calendar.

Configuration (environment or ``.env``): DATABASE_URL.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scalper_ingestion.coverage import DayCoverage, stored_coverage
from scalper_ingestion.settings import IngestionSettings, parse_symbols
from scalper_shared.core.calendar import NEW_YORK
from scalper_shared.db import make_engine, migrate
from scalper_shared.settings import load_settings

app = typer.Typer(help=__doc__, no_args_is_help=True)
console = Console(width=160)
RUNS_SHOWN = 6


def _day(value: str, option: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{option} {value!r} is not a date YYYY-MM-DD") from None


def _runs(day: DayCoverage) -> str:
    shown = [str(run) for run in day.missing_runs[:RUNS_SHOWN]]
    more = len(day.missing_runs) - RUNS_SHOWN
    return ", ".join(shown) + (f", +{more} more" if more > 0 else "")


def coverage_table(symbol: str, days: list[DayCoverage]) -> Table:
    table = Table(title=f"{symbol}: regular-hours coverage")
    for column in ("day", "hours (ET)", "expected", "present", "missing", "extended", "missing runs"):
        table.add_column(column, justify="right" if column in ("expected", "present", "missing", "extended")
                         else "left")
    for day in days:
        hours = (f"{day.day.open.astimezone(NEW_YORK):%H:%M}-{day.day.close.astimezone(NEW_YORK):%H:%M}"
                 + (" early close" if day.day.early_close else ""))
        table.add_row(day.day.day.isoformat(), hours, str(day.expected), str(day.present), str(day.missing),
                      str(day.extended_present), _runs(day))
    return table


@app.command()
def report(
    symbol: Annotated[str, typer.Option("--symbol", help="Ticker, e.g. SPY")],
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD, New York date)")],
    end: Annotated[str, typer.Option("--to", help="Last day, inclusive")],
) -> None:
    """Per trading day: expected regular minutes (early closes included), present, missing, runs."""
    try:
        (ticker,) = parse_symbols(symbol)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    first, last = _day(start, "--from"), _day(end, "--to")
    if last < first:
        raise typer.BadParameter(f"--to {end} is before --from {start}")
    settings = load_settings(IngestionSettings)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        days = stored_coverage(engine, ticker, first, last)
    finally:
        engine.dispose()
    console.print(coverage_table(ticker, days))
    expected, present = sum(d.expected for d in days), sum(d.present for d in days)
    console.print(f"{len(days)} trading days, {expected} regular minutes expected, {present} present, "
                  f"{expected - present} missing; {sum(1 for d in days if d.complete)} complete days")
