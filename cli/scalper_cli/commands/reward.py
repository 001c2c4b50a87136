"""``scalper reward audit``: does a preset's reward rank reference policies like after-cost money?

Plays the reward audit's reference policies (always HOLD, random, the momentum rule, every strong
setup exited after 5 or 15 minutes, buying only without a setup, the edge rule) over the symbol-days
of the ``bars`` table (``--source database``, DATABASE_URL from the environment or ``.env``) or the
embedded synthetic market, with the real training environment; see ``docs/rewards.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scalper_cli.market_options import check_market, day_window
from scalper_shared.core.rewards import REWARD_TERMS
from scalper_shared.settings import ServiceSettings, load_settings

app = typer.Typer(help=__doc__, no_args_is_help=True)
console = Console(width=140)
errors = Console(stderr=True)


TERM_LABELS = {"pnl": "pnl%", "mark_to_market": "mtm%", "scalp_tier": "tier%", "good_buy": "good%",
               "missed_opportunity": "miss%", "bad_chase": "chase%", "hold_tax": "hold%", "stop_loss": "stop%"}
"""Short column labels: each term's signed share of the reward (term / sum of |terms|), in percent."""


def render(document: dict[str, Any]) -> Table:
    """The audit as a table: policies by P&L (per symbol-day, "sd"), reward and each term's share of it."""
    spearman = document["spearman"]
    table = Table(title=f"reward audit, preset {document['preset']}: {document['symbol_days']} symbol-days, "
                        f"Spearman {'n/a' if spearman is None else f'{spearman:.3f}'}")
    for column in ("policy", "P&L $/sd", "reward/sd", "trades/sd", *(TERM_LABELS[term] for term in REWARD_TERMS)):
        table.add_column(column, justify="left" if column == "policy" else "right", no_wrap=True)
    ranked = sorted(document["policies"].items(), key=lambda item: -item[1]["pnl_per_symbol_day"])
    for name, row in ranked:
        table.add_row(name, f"{row['pnl_per_symbol_day']:,.0f}", f"{row['reward_per_symbol_day']:.3f}",
                      f"{row['trades_per_symbol_day']:.2f}",
                      *(f"{100 * row['terms'][term]['share']:.0f}" for term in REWARD_TERMS))
    return table


@app.command()
def audit(
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD)")],
    end: Annotated[str, typer.Option("--to", help="Last day, inclusive")],
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols")] = "SPY,QQQ",
    source: Annotated[str, typer.Option(help="database or synthetic")] = "database",
    preset: Annotated[str, typer.Option(help="Training preset whose reward is audited")] = "default",
    synthetic_seed: Annotated[int, typer.Option("--synthetic-seed", min=0, help="Seed of the synthetic market")] = 0,
    synthetic_edge: Annotated[str, typer.Option("--synthetic-edge", help="none or momentum")] = "none",
    seed: Annotated[int, typer.Option(help="Seed of the random policies")] = 0,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the audit as JSON here")] = None,
) -> None:
    """Play the reference policies over --from..--to and compare their reward with their P&L."""
    from scalper_shared.schema.presets import get_preset
    from scalper_trainer.evaluation.audit import audit_reward
    from scalper_trainer.evaluation.run import window_episodes

    first, last = day_window(start, end)
    check_market(source, synthetic_seed, synthetic_edge)
    try:
        reward = get_preset(preset).reward
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    chosen = [s.strip() for s in symbols.split(",") if s.strip()]
    database_url = load_settings(ServiceSettings).database_url if source == "database" else None
    try:
        episodes = window_episodes(first, last, chosen, data_source=source, database_url=database_url,
                                   data_seed=synthetic_seed, data_edge=synthetic_edge)
        result = audit_reward(episodes, reward, preset=preset, seed=seed)
    except ValueError as error:
        errors.print(f"[red]error:[/] {error}", highlight=False)
        raise typer.Exit(1) from None
    document = {**result.to_json(), "window": {"from": first.isoformat(), "to": last.isoformat(), "symbols": chosen,
                                               "source": source, **({"synthetic_seed": synthetic_seed,
                                                                     "synthetic_edge": synthetic_edge}
                                                                    if source == "synthetic" else {})}}
    console.print(render(document))
    if result.misranked_pairs():
        console.print(f"[yellow]misranked:[/] {len(result.misranked_pairs())} pairs earn more reward while making "
                      "less money: " + "; ".join(f"{a} > {b}" for a, b in result.misranked_pairs()[:6]),
                      highlight=False)
    if json_file is not None:
        json_file.write_text(json.dumps(document, indent=2))
        console.print(f"audit: {json_file}", highlight=False)
