"""An evaluation's report files downloaded from the policy API (``scalper eval --out``, the demo)."""

from __future__ import annotations

from pathlib import Path

import httpx

from scalper_cli.api_client import checked

PLOT_FILES = ("equity.png", "drawdown.png", "checkpoint_actions.png", "exits_by_reason.png", "pnl_histogram.png")


def download(http: httpx.Client, evaluation_id: str, out: Path) -> Path:
    """The report, its metrics and plots under ``out``; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("report.html", "metrics.json", *PLOT_FILES):
        url = f"/v1/evaluations/{evaluation_id}/{'report' if name == 'report.html' else name}"
        response = http.get(url)
        if response.status_code >= 400:
            checked(response)
        (out / name).write_bytes(response.content)
    return out / "report.html"
