"""Options shared by the commands that read a window of market data (``eval``, ``reward audit``,
``train``): the day window, the source and the synthetic market's seed and planted edge."""

from __future__ import annotations

from datetime import date, datetime

import typer

from scalper_shared.core.edge import MARKET_EDGES

SOURCES = ("database", "synthetic")


def parse_day(value: str, option: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{option} {value!r} is not a date YYYY-MM-DD") from None


def day_window(start: str, end: str) -> tuple[date, date]:
    """``--from``/``--to`` as dates, refused when out of order."""
    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    if last < first:
        raise typer.BadParameter(f"--to {end} is before --from {start}")
    return first, last


def check_market(source: str, synthetic_seed: int, synthetic_edge: str) -> None:
    """Refuse an unknown source or edge, and a synthetic seed or edge without the synthetic source."""
    if source not in SOURCES:
        raise typer.BadParameter(f"--source {source!r}: database or synthetic")
    if synthetic_edge not in MARKET_EDGES:
        raise typer.BadParameter(f"--synthetic-edge {synthetic_edge!r}: one of {', '.join(MARKET_EDGES)}")
    if source != "synthetic" and (synthetic_edge != "none" or synthetic_seed != 0):
        raise typer.BadParameter("--synthetic-seed and --synthetic-edge need --source synthetic")
