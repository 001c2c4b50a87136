"""``scalper ingest``: backfill, file import, live feed and replay into the bars table and ``md.bars``.

Configuration (environment or ``.env``): DATABASE_URL, REDIS_URL, STREAM_PREFIX, POLYGON_API_KEY and
the other ingestion settings (see ``.env.example``). Every command runs the ingestion service's core
(:mod:`scalper_ingestion`): validate -> upsert -> commit -> publish.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import Engine

from scalper_ingestion.backfill import (
    ImportFailed,
    SourceKind,
    default_source_kind,
    file_source,
    make_history_source,
    run_backfill,
)
from scalper_ingestion.live import make_live_source, run_live
from scalper_ingestion.replay import Pacer, parse_speed, replay_days
from scalper_ingestion.settings import IngestionSettings, parse_symbols
from scalper_ingestion.sources.files import FileFormatError
from scalper_ingestion.sources.polygon_rest import PolygonError, PolygonRestSource
from scalper_ingestion.writer import BarWriter, WriteResult
from scalper_shared.bus import StreamProducer
from scalper_shared.clock import SystemClock
from scalper_shared.core.calendar import trading_days
from scalper_shared.core.edge import MARKET_EDGES
from scalper_shared.core.synthetic import SYMBOLS as SYNTHETIC_SYMBOLS
from scalper_shared.db import make_engine, migrate
from scalper_shared.schema import streams
from scalper_shared.settings import load_settings

app = typer.Typer(help=__doc__, no_args_is_help=True)
console = Console()


def parse_day(value: str, option: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{option} {value!r} is not a date YYYY-MM-DD") from None


def _symbols(value: str) -> tuple[str, ...]:
    try:
        return parse_symbols(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@dataclass
class Context:
    settings: IngestionSettings
    engine: Engine
    producer: StreamProducer

    def writer(self) -> BarWriter:
        return BarWriter(self.engine, self.producer, clock=SystemClock(), rules=self.settings.quality_rules,
                         db_retry_s=self.settings.db_retry_s)


@contextmanager
def ingestion_context() -> Iterator[Context]:
    """Settings, a migrated database and the ``md.bars`` producer; closed afterwards."""
    settings = load_settings(IngestionSettings)
    engine = make_engine(settings.database_url)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    try:
        migrate(engine)
        producer = StreamProducer(client, streams.MD_BARS, maxlen=settings.stream_maxlen,
                                  prefix=settings.stream_prefix)
        yield Context(settings, engine, producer)
    finally:
        client.close()
        engine.dispose()


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[label]}[/]"), BarColumn(),
                    MofNCompleteColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=console)


def summary(result: WriteResult) -> str:
    """One line saying what a job did."""
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(result.reasons.items()))
    drained = f" (and {result.drained} stored earlier, left unpublished)" if result.drained else ""
    return (f"{result.received} bars received: {result.inserted} inserted, {result.updated} updated, "
            f"{result.unchanged} unchanged, {result.quarantined} quarantined"
            + (f" ({reasons})" if reasons else "") + f"; {result.published} published to md.bars{drained}")


def failure_line(label: str, failed: ImportFailed) -> str:
    """One line for a job that stopped: the cause, then what it committed and what it published."""
    committed = failed.committed
    pending = ("unknown (the database did not answer)" if failed.pending is None else str(failed.pending))
    cause = str(failed.cause).strip().splitlines()[0] if str(failed.cause).strip() else type(failed.cause).__name__
    head = cause if isinstance(failed.cause, FileFormatError) else f"{label}: {cause}"
    if committed.stored == 0 and committed.quarantined == 0 and failed.published == 0 and failed.pending == 0:
        return f"error: {head}"  # nothing was written
    return (f"error: {head}; committed {committed.stored} bars ({committed.inserted} inserted, "
            f"{committed.updated} updated, {committed.quarantined} quarantined), published {failed.published} "
            f"to md.bars; {pending} stored bars wait in the outbox (the next import or the ingestion service "
            f"publishes them)")


@contextmanager
def reported(label: str) -> Iterator[None]:
    """Turn a failed job into one line and exit status 1 (no traceback)."""
    try:
        yield
    except ImportFailed as failed:
        console.print(failure_line(label, failed), soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(1) from None


def check_not_all_quarantined(label: str, total: WriteResult) -> None:
    """Exit 1 when the input held rows and every one of them was quarantined."""
    if total.received and total.stored == 0:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(total.reasons.items()))
        hint = ("; timestamps before the earliest date: is t in seconds? it must be epoch milliseconds"
                if "timestamp_before_earliest" in total.reasons else "")
        console.print(f"error: {label}: every one of {total.received} rows was quarantined ({reasons}){hint}",
                      soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(1)


@app.command()
def backfill(
    symbols: Annotated[str, typer.Option("--symbols", help="Comma-separated tickers, e.g. SPY,QQQ,I:SPX")],
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD, New York date)")],
    end: Annotated[str, typer.Option("--to", help="Last day, inclusive")],
    source: Annotated[SourceKind | None, typer.Option(
        "--source", help="polygon or synthetic (default: polygon when POLYGON_API_KEY is set)")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Ignore the download cache (Polygon)")] = False,
    synthetic_seed: Annotated[int | None, typer.Option(
        "--synthetic-seed", min=0, help="Seed of the synthetic market (default INGESTION_SYNTHETIC_SEED)")] = None,
    synthetic_edge: Annotated[str | None, typer.Option(
        "--synthetic-edge", help="Planted edge of the synthetic market: none or momentum")] = None,
) -> None:
    """Backfill minute bars of --symbols for the trading days --from..--to."""
    symbol_list, first, last = _symbols(symbols), parse_day(start, "--from"), parse_day(end, "--to")
    if last < first:
        raise typer.BadParameter(f"--to {end} is before --from {start}")
    if synthetic_edge is not None and synthetic_edge not in MARKET_EDGES:
        raise typer.BadParameter(f"--synthetic-edge {synthetic_edge!r}: one of {', '.join(MARKET_EDGES)}")
    with ingestion_context() as ctx:
        kind = source or default_source_kind(ctx.settings)
        if kind is SourceKind.POLYGON and not ctx.settings.polygon_api_key:
            raise typer.BadParameter("--source polygon needs POLYGON_API_KEY")
        if kind is not SourceKind.SYNTHETIC and (synthetic_seed is not None or synthetic_edge is not None):
            raise typer.BadParameter("--synthetic-seed and --synthetic-edge need --source synthetic")
        if kind is SourceKind.SYNTHETIC and set(symbol_list) - set(SYNTHETIC_SYMBOLS):
            raise typer.BadParameter(f"the synthetic market has {', '.join(SYNTHETIC_SYMBOLS)} only")
        why = "--source" if source else ("POLYGON_API_KEY is set" if ctx.settings.polygon_api_key
                                         else "no POLYGON_API_KEY")
        console.print(f"source: [bold]{kind.value}[/] ({why})")
        days = len(trading_days(first, last))
        batches = days * (len(symbol_list) if kind is SourceKind.POLYGON else 1)
        bar_source = make_history_source(kind, ctx.settings, symbol_list, first, last, refresh=refresh,
                                         synthetic_seed=synthetic_seed, synthetic_edge=synthetic_edge)
        with reported("backfill"), _progress() as progress:
            task = progress.add_task("", total=batches, label="backfill")
            total = run_backfill(bar_source, ctx.writer(), on_batch=lambda r: progress.update(
                task, advance=1, description=f"{r.received} bars"))
    console.print(summary(total), soft_wrap=True)
    if isinstance(bar_source, PolygonRestSource):
        warn_empty_days(bar_source.empty_days)
    check_not_all_quarantined("backfill", total)


def warn_empty_days(empty: list[tuple[str, date]], shown: int = 8) -> None:
    """One warning for the trading days Polygon had no bar for (they were not cached as complete)."""
    if not empty:
        return
    listed = ", ".join(f"{symbol} {day}" for symbol, day in empty[:shown]) + (" ..." if len(empty) > shown else "")
    console.print(f"warning: Polygon returned no bars for {len(empty)} trading symbol-day(s): {listed}. Is the range "
                  "inside your plan's history and the ticker right (indices as I:SPX)? These days were not cached: "
                  "a later backfill asks Polygon again.", soft_wrap=True, markup=False, highlight=False)


@app.command("file")
def import_file(
    path: Annotated[Path, typer.Argument(help="Polygon-shaped CSV(.gz) or Parquet: t,o,h,l,c[,v,vw,n]",
                                         exists=True, dir_okay=False, readable=True)],
    symbol: Annotated[str, typer.Option("--symbol", help="Ticker of the file's bars")],
    no_volume: Annotated[bool, typer.Option(
        "--no-volume", help="Accept an equity file without a volume column (volume features unavailable)")] = False,
) -> None:
    """Import one file of minute bars of --symbol. Exits 1 with one line when the file cannot be read,
    when every row is quarantined, or when the job fails (saying what it committed and published)."""
    (ticker,) = _symbols(symbol)
    with ingestion_context() as ctx, reported(str(path)), _progress() as progress:
        task = progress.add_task("", total=None, label=f"import {path.name}")
        total = run_backfill(file_source(path, ticker, allow_no_volume=no_volume), ctx.writer(),
                             on_batch=lambda r: progress.update(task, advance=r.received, description=f"{ticker}"))
    console.print(summary(total), soft_wrap=True)
    check_not_all_quarantined(str(path), total)


@app.command()
def options(
    underlying: Annotated[str, typer.Option("--underlying", help="Underlying ticker: SPY, QQQ or I:SPX")],
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD, New York date)")],
    end: Annotated[str, typer.Option("--to", help="Last day, inclusive")],
    strikes_around: Annotated[int, typer.Option(
        "--strikes-around", min=0, max=50, help="Listed strikes beyond the day's low and high, each side")] = 5,
    refresh: Annotated[bool, typer.Option("--refresh", help="Ignore the download cache")] = False,
) -> None:
    """Real option minute bars: the same-day contracts near the money of --underlying -> option_bars.

    Needs POLYGON_API_KEY on a plan that covers options (a plan without them gets a clear 403 error).
    """
    from scalper_ingestion.options import OptionBarWriter, PolygonOptionsSource, run_option_backfill
    from scalper_ingestion.sources.cache import AggsCache
    from scalper_ingestion.sources.polygon_rest import PolygonError, PolygonRestSource, RestPolicy

    (ticker,) = _symbols(underlying)
    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    if last < first:
        raise typer.BadParameter(f"--to {end} is before --from {start}")
    with ingestion_context() as ctx:
        settings = ctx.settings
        if not settings.polygon_api_key:
            raise typer.BadParameter("option bars come from Polygon: set POLYGON_API_KEY")
        bars = PolygonRestSource(settings.polygon_api_key, [ticker], first, last,
                                 cache=AggsCache(settings.polygon_cache_dir), refresh=refresh,
                                 policy=RestPolicy(requests_per_minute=settings.polygon_requests_per_minute),
                                 base_url=settings.polygon_rest_url)
        source = PolygonOptionsSource(bars, ticker, strikes_around=strikes_around)
        with _progress() as progress:
            task = progress.add_task("", total=None, label="options")
            try:
                total = run_option_backfill(source, OptionBarWriter(ctx.engine), on_batch=lambda b, r: progress.update(
                    task, advance=1, description=f"{b.contract.ticker} {b.day}: {r.received} bars"))
            except PolygonError as error:
                console.print(f"[red]error:[/] {error}", highlight=False)
                raise typer.Exit(1) from None
    console.print(f"option bars: {summary(total).split('; ')[0]}", soft_wrap=True)


@app.command()
def live() -> None:
    """Run the Polygon websocket feed (INGESTION_SYMBOLS) until Ctrl-C."""
    stop = threading.Event()
    total = [WriteResult()]
    with ingestion_context() as ctx:
        if not ctx.settings.polygon_api_key:
            raise typer.BadParameter("live mode needs POLYGON_API_KEY")
        console.print(f"live: {ctx.settings.symbols} -> bars table and md.bars (Ctrl-C stops)")

        def report(result: WriteResult) -> None:
            total[0] = total[0] + result
            console.print(f"{datetime.now().strftime('%H:%M:%S')} {summary(result)}")

        try:
            asyncio.run(run_live(make_live_source(ctx.settings), ctx.writer(), stop, on_batch=report))
        except KeyboardInterrupt:
            stop.set()
        except PolygonError as error:
            console.print(f"error: {error}", soft_wrap=True, markup=False, highlight=False)
            raise typer.Exit(1) from None
    console.print(f"stopped; {summary(total[0])}", soft_wrap=True)


@app.command()
def replay(
    day: Annotated[str, typer.Option("--date", help="First day to replay (YYYY-MM-DD)")],
    to: Annotated[str | None, typer.Option("--to", help="Last day, inclusive (default: --date)")] = None,
    speed: Annotated[str, typer.Option("--speed", help="1 real time, N times faster, 0 or max: no waiting")] = "1",
    symbols: Annotated[str | None, typer.Option("--symbols", help="Only these tickers (default: all)")] = None,
) -> None:
    """Publish stored bars of --date..--to to md.bars minute by minute at --speed."""
    first = parse_day(day, "--date")
    last = parse_day(to, "--to") if to else first
    try:
        factor = parse_speed(speed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    symbol_list = _symbols(symbols) if symbols else None
    days = [session.day for session in trading_days(first, last)]
    with ingestion_context() as ctx, _progress() as progress:
        task = progress.add_task("", total=None, label="replay")
        result = replay_days(ctx.engine, ctx.producer, days, speed=factor, symbols=symbol_list,
                             pacer=Pacer(factor),
                             on_minute=lambda n: progress.update(task, advance=n, description="bars"))
    console.print(f"replayed {result.days} days, {result.minutes} minutes, {result.published} bars to "
                  f"md.bars at speed {'max' if factor == 0 else f'{factor:g}x'}")
