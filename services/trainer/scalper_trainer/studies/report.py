"""The study report: ``report.html`` (one self-contained file) and ``study.json``.

Sections (``SECTIONS``; the test checks each is rendered): the summary (objective, trials by state,
the best value and its model), every trial (state, value, parameters, the walk-forward figures and
the attributes), Optuna's own figures from ``optuna.visualization`` (optimisation history, parameter
importances by PED-ANOVA, which needs no scikit-learn, parallel coordinates, and the intermediate
values the pruner judged), the best trial's parameters, its walk-forward P&L per fold and against
every baseline with the paired bootstrap interval of the daily difference, and its checkpoint
diagnostics per fold. plotly.js is embedded once, so the page renders offline. The page comes
from the Jinja2 template ``templates/study_report.html.j2`` with the evaluation report's filters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import optuna
from optuna.importance import PedAnovaImportanceEvaluator
from sqlalchemy import Engine

from scalper_shared import studies
from scalper_shared.db.training import load_diagnostics
from scalper_trainer.evaluation.report import _ENVIRONMENT as EVALUATION_TEMPLATES
from scalper_trainer.evaluation.report import _json_safe

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
DOCUMENT_FILE = "study.json"
TEMPLATE = "study_report.html.j2"
SECTIONS = ("summary", "trials", "history", "importances", "parallel", "intermediate", "best", "walk_forward",
            "diagnostics")
"""The ids of the report's sections."""
DIAGNOSTIC_FIELDS = ("hold_share", "buy_share", "setup_buy_rate", "nonsetup_buy_rate", "entropy",
                     "trades_per_account_day", "pnl_per_account_day")

_ENVIRONMENT = jinja2.Environment(loader=jinja2.PackageLoader("scalper_trainer.studies", "templates"),
                                  autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
                                  trim_blocks=True, lstrip_blocks=True)
_ENVIRONMENT.filters.update({k: EVALUATION_TEMPLATES.filters[k] for k in ("number", "money", "percent")})


def figures(study: optuna.Study) -> dict[str, str | None]:
    """Optuna's figures as HTML fragments (plotly.js not included); None where the study has too
    few finished trials for one (the page says so)."""
    from optuna import visualization as vis

    makers: dict[str, Callable[[], Any]] = {
        "history": lambda: vis.plot_optimization_history(study),
        "importances": lambda: vis.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator()),
        "parallel": lambda: vis.plot_parallel_coordinate(study),
        "intermediate": lambda: vis.plot_intermediate_values(study),
    }
    out: dict[str, str | None] = {}
    for key, make in makers.items():
        try:
            out[key] = make().to_html(full_html=False, include_plotlyjs=False, default_height="420px")
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            logger.info("study %s: no %s figure (%s)", study.study_name, key, error)
            out[key] = None
    return out


def study_document(study: optuna.Study, engine: Engine) -> dict[str, Any]:
    """Everything the page shows, as JSON: the view, the best trial's diagnostics per fold."""
    view = studies.study_view(study).model_dump(mode="json")
    best = view.get("best")
    diagnostics: list[dict[str, Any]] = []
    if best:
        for run_id in best["attrs"].get("fold_runs", []):
            rows = [d.model_dump(mode="json") for d in load_diagnostics(engine, run_id)]
            diagnostics.append({"run": run_id, "checkpoints": rows})
    return {**view, "best_diagnostics": diagnostics}


def write_study_report(study: optuna.Study, engine: Engine, out_dir: Path) -> Path:
    """Write ``study.json`` and ``report.html`` into ``out_dir``; the HTML's path."""
    from plotly.offline import get_plotlyjs

    out_dir.mkdir(parents=True, exist_ok=True)
    document = _json_safe(study_document(study, engine))
    (out_dir / DOCUMENT_FILE).write_text(json.dumps(document, indent=1))
    html = _ENVIRONMENT.get_template(TEMPLATE).render(doc=document, figures=figures(study), plotlyjs=get_plotlyjs(),
                                                      diagnostic_fields=DIAGNOSTIC_FIELDS)
    path = out_dir / REPORT_FILE
    partial = path.with_name(REPORT_FILE + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    logger.info("study %s: report written to %s", study.study_name, path)
    return path
