"""``scalper premium``: the option-premium model against real option quotes, and its calibration.

``check`` prices every quote of the given files (the tidy format of ``../shared/data/options``)
with a premium config and prints the errors by moneyness bucket, at the money by hour, and the
round-trip cost of an ATM option; ``calibrate`` fits a ``PremiumModelConfig`` on quotes and writes
it as JSON for ``--premium-config``. See docs/premium-and-risk.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help=__doc__, no_args_is_help=True)
console = Console(width=160)
errors = Console(stderr=True)
Quotes = Annotated[list[Path] | None, typer.Option("--quotes", help="Tidy quote file(s) (.csv or .csv.gz); repeat")]
Bars = Annotated[Path | None, typer.Option("--bars", help="1-minute bars of the underlying (Polygon columns t,c)")]


def fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(2)


def load_premium_config(path: Path | None) -> Any:
    """A ``PremiumModelConfig`` from a JSON file (the default config without one); a clear error otherwise."""
    from pydantic import ValidationError

    from scalper_shared.core.premium import DEFAULT_PREMIUM_CONFIG, PremiumModelConfig

    if path is None:
        return DEFAULT_PREMIUM_CONFIG
    try:
        return PremiumModelConfig.model_validate_json(path.read_text())
    except OSError as error:
        raise fail(f"cannot read premium config {path}: {error.strerror}") from None
    except ValidationError as error:
        raise fail(f"{path} is not a premium config: {error.errors()[0]['loc']} {error.errors()[0]['msg']}") from None


def _read_csv(path: Path, what: str) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, ValueError, EOFError) as error:
        raise fail(f"cannot read {what} {path}: {error}") from None


def read_quotes(paths: list[Path] | None) -> Any:
    import pandas as pd

    if not paths:
        raise fail("give at least one --quotes FILE (or --option-bars SYMBOL --from D --to D)")
    return pd.concat([_read_csv(p, "quotes") for p in paths], ignore_index=True)


def stored_option_quotes(symbol: str, first: str | None, last: str | None) -> Any:
    """The option bars ``scalper ingest options`` stored for ``symbol`` on ``first..last``, as tidy rows
    (the close a trade print, the underlying from the bars table). DATABASE_URL from the environment."""
    from datetime import date

    from scalper_ingestion.options import stored_option_quotes as load_quotes
    from scalper_shared.db import make_engine
    from scalper_shared.settings import ServiceSettings, load_settings

    try:
        start, end = date.fromisoformat(first or ""), date.fromisoformat(last or first or "")
    except ValueError:
        raise fail("--option-bars needs --from YYYY-MM-DD (and optionally --to)") from None
    engine = make_engine(load_settings(ServiceSettings).database_url)
    try:
        return load_quotes(engine, symbol, start, end)
    finally:
        engine.dispose()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}" if value < 0 else f"{value:.1%}"


def _dollars(value: float | None) -> str:
    return "-" if value is None else f"${value:.2f}"


def _rows_table(title: str, rows: dict[str, dict[str, Any]], first: str) -> Table:
    table = Table(title=title)
    for column in (first, "n", "median err", "median |err|", "p90 |err|", "within 25%", "spread model",
                   "spread real"):
        table.add_column(column, justify="left" if column == first else "right")
    for name, stats in rows.items():
        if not stats.get("n"):
            table.add_row(name, "0", *["-"] * 6)
            continue
        table.add_row(name, str(stats["n"]), _pct(stats["median_rel_error"]), f"{stats['median_abs_rel_error']:.1%}",
                      f"{stats['p90_abs_rel_error']:.1%}", f"{stats['share_within_25pct']:.0%}",
                      _dollars(stats["median_spread_model"]), _dollars(stats["median_spread_real"]))
    return table


def show_report(report: dict[str, Any]) -> None:
    console.print(f"{report['n_quotes']} quotes on {', '.join(report['days'])}; dropped: {report['dropped'] or 'none'}",
                  highlight=False)
    console.print(_rows_table("model mid vs real mid, by moneyness (err = model / real - 1)", report["buckets"],
                              "bucket"))
    console.print(_rows_table("at the money, by hour (ET)", report["hours"], "hour"))
    table = Table(title="round trip of one ATM contract (spread x 100 + 2 commissions), median within 5 min")
    for column in ("time", "n", "real $", "model $", "real % of premium", "model % of premium"):
        table.add_column(column, justify="right")
    for label, cost in report["round_trip"].items():
        if not cost["n"]:
            table.add_row(label, "0", "-", "-", "-", "-")
            continue
        table.add_row(label, str(cost["n"]), f"{cost['real_dollars']:.2f}", f"{cost['model_dollars']:.2f}",
                      f"{cost['real_pct_of_premium']:.1%}", f"{cost['model_pct_of_premium']:.1%}")
    console.print(table)


@app.command()
def check(
    quotes: Quotes = None,
    bars: Bars = None,
    premium_config: Annotated[Path | None, typer.Option("--premium-config", help="PremiumModelConfig JSON")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures as JSON here")] = None,
    stored: Annotated[str | None, typer.Option(
        "--option-bars", help="Also check the option bars stored for this underlying (scalper ingest options)")] = None,
    first: Annotated[str | None, typer.Option("--from", help="First day of --option-bars (YYYY-MM-DD)")] = None,
    last: Annotated[str | None, typer.Option("--to", help="Last day of --option-bars (default: --from)")] = None,
) -> None:
    """Compare the premium model with real quotes: errors by moneyness and hour, ATM round-trip cost.

    Stored option bars are trade prints: their close stands for the mid, and they have no spread."""
    import pandas as pd

    from scalper_shared.core.premium_fit import QuoteDataError, check_report, prepare_quotes

    config = load_premium_config(premium_config)
    try:
        parts = [read_quotes(quotes)] if quotes or stored is None else []
        if stored is not None:
            parts.append(stored_option_quotes(stored, first, last))
    except QuoteDataError as error:
        raise fail(str(error)) from None
    frame = pd.concat(parts, ignore_index=True)
    bar_frame = _read_csv(bars, "bars") if bars is not None else None
    try:
        report = check_report(prepare_quotes(frame, bar_frame, config), config)
    except QuoteDataError as error:
        raise fail(str(error)) from None
    show_report(report)
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2))
        console.print(f"figures: {json_out}", highlight=False)


@app.command()
def calibrate(
    quotes: Quotes,
    out: Annotated[Path, typer.Option("--out", help="Where to write the fitted PremiumModelConfig JSON")],
    bars: Bars = None,
    base: Annotated[Path | None, typer.Option("--base", help="Start from this PremiumModelConfig JSON")] = None,
) -> None:
    """Fit the premium model (multiplier, time-of-day curve, floor, skew, vol prior, spreads) on quotes."""
    from scalper_shared.core.premium_fit import QuoteDataError
    from scalper_shared.core.premium_fit import calibrate as fit

    frame = read_quotes(quotes)
    bar_frame = _read_csv(bars, "bars") if bars is not None else None
    try:
        result = fit(frame, bar_frame, load_premium_config(base))
    except QuoteDataError as error:
        raise fail(str(error)) from None
    out.write_text(json.dumps(result.config.model_dump(mode="json"), indent=2))
    config = result.config
    console.print(f"multiplier {config.calibration_multiplier} | vol prior {config.vol_prior} | floor "
                  f"{config.vol_floor} | skew slope {config.skew_slope} curvature {config.skew_curvature}",
                  highlight=False)
    console.print(f"time of day: {list(config.time_of_day_curve)}", highlight=False)
    for symbol, spec in config.symbols.items():
        console.print(f"{symbol}: spread ${spec.spread_abs} + {spec.spread_pct:.2%} x mid, last hour x"
                      f"{1 + spec.last_hour_widening:.2f} at the close", highlight=False)
    for note in result.details.get("notes", []):
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"config: {out}", highlight=False)
