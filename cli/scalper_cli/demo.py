"""``scalper demo``: the whole loop on the embedded synthetic market, through the running services.

The demo is a list of small steps (:data:`STEPS`); each takes the shared :class:`DemoContext` and
returns a one-line result, or raises :class:`DemoError` (or any error) to fail the demo:

stack up (with a one-run admin API key and paper-mode settings) -> readiness, health, metrics and a
bus round trip -> store several weeks of synthetic SPY, QQQ and I:SPX bars (ingestion backfill,
not published: the live services see only the paper day) -> train over REST (progress bar,
checkpoint diagnostics) -> evaluate on held-out days against the baselines over REST (report
under ``var/reports/<model>/``) -> promote -> one paper day through the live services, compared
with the backtest -> an honest summary. The stack is brought down at the end, whatever happened,
unless ``keep_up``. Training reads the ``bars`` table (``data_source="database"``) and computes
the features itself.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import redis
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scalper_cli import stack
from scalper_cli.api_client import checked
from scalper_cli.diagnostics_table import render_diagnostics
from scalper_cli.followers import follow_evaluation, follow_training
from scalper_cli.settings import StackSettings
from scalper_policy.policy_api import ServedModelView
from scalper_shared.bus import ENVELOPE_FIELD, StreamProducer
from scalper_shared.clock import SystemClock, uuid_ids
from scalper_shared.runtime.api_security import API_KEY_HEADER, ApiKeyRecord, Scope, hash_key
from scalper_shared.schema import CODEC, Bar, Envelope, Session, make_envelope, streams
from scalper_shared.schema.evaluation import EvaluationAccepted, EvaluationMetrics, EvaluationStatus
from scalper_shared.schema.training import Diagnostics, JobState, ModelView, TrainingJobAccepted

if TYPE_CHECKING:
    from scalper_trainer.evaluation.paper import PaperResult

logger = logging.getLogger(__name__)

DEMO_BAR_COUNT = 5
DEMO_SYMBOL = "SPY"
DEMO_SESSION_OPEN = datetime(2024, 6, 3, 13, 30, tzinfo=UTC)


MARKET_SYMBOLS = ("SPY", "QQQ", "I:SPX")
TRADED_SYMBOLS = ("SPY", "QQQ")


class DemoError(RuntimeError):
    """A demo step found the stack not doing what it should; the message says what."""


@dataclass(frozen=True)
class DemoPlan:
    """The demo's windows (New York dates, inclusive) and training budget.

    Four weeks to train, the next week for the training job's checkpoint diagnostics, the week
    after that (never seen by training) for the evaluation, and the next trading day for paper.
    """

    train_from: date = date(2025, 7, 7)
    train_to: date = date(2025, 8, 1)
    validation_from: date = date(2025, 8, 4)
    validation_to: date = date(2025, 8, 8)
    evaluation_from: date = date(2025, 8, 11)
    evaluation_to: date = date(2025, 8, 15)
    paper_day: date = date(2025, 8, 18)
    timesteps: int = 50_000
    n_envs: int = 128
    seed: int = 0
    poll_s: float = 1.0
    training_timeout_s: float = 900.0
    evaluation_timeout_s: float = 600.0

    def train_config(self) -> dict[str, Any]:
        """The ``TrainConfig`` JSON of the demo's training job (default PPO settings)."""
        return {"symbols": list(TRADED_SYMBOLS), "train_from": self.train_from.isoformat(),
                "train_to": self.train_to.isoformat(), "validation_from": self.validation_from.isoformat(),
                "validation_to": self.validation_to.isoformat(), "data_source": "database",
                "total_timesteps": self.timesteps, "n_envs": self.n_envs, "seed": self.seed}

    def evaluation_request(self, model_id: str) -> dict[str, Any]:
        return {"model_id": model_id, "start": self.evaluation_from.isoformat(),
                "end": self.evaluation_to.isoformat(), "seed": self.seed, "data_source": "database"}


def new_api_key() -> tuple[str, ApiKeyRecord]:
    """A fresh admin key for this run: the plain key (kept in memory) and its hashed record."""
    key = "sk_demo_" + secrets.token_urlsafe(32)
    return key, ApiKeyRecord(name="demo", sha256=hash_key(key), scopes=frozenset({Scope.ADMIN}))


def service_environment(record: ApiKeyRecord) -> dict[str, str]:
    """What the demo adds to the services' environment: its key and the live feed off. Nothing for the
    paper day: it runs in a namespace of its own with default settings (:mod:`scalper_cli.paper_services`)."""
    entry = {"name": record.name, "sha256": record.sha256, "scopes": sorted(s.value for s in record.scopes)}
    return {"API_KEYS": json.dumps([entry]), "INGESTION_LIVE": "false", "FEATURES_SYMBOLS": ",".join(TRADED_SYMBOLS)}


@dataclass
class DemoFacts:
    """What the steps found, for the next steps and the summary (only what they got to)."""

    model_id: str | None = None
    diagnostics: list[Diagnostics] = field(default_factory=list)
    report: Path | None = None
    metrics: EvaluationMetrics | None = None
    artifact_dir: Path | None = None
    paper: PaperResult | None = None

    def trained_model(self) -> str:
        if self.model_id is None:
            raise DemoError("no model was trained")
        return self.model_id


@dataclass
class DemoContext:
    settings: StackSettings
    console: Console
    plan: DemoPlan = field(default_factory=DemoPlan)
    api_key: str = ""
    service_env: dict[str, str] = field(default_factory=dict)
    report: stack.UpReport | None = None
    facts: DemoFacts = field(default_factory=lambda: DemoFacts())

    @property
    def redis_url(self) -> str:
        if self.report is None:
            raise DemoError("the stack is not up")
        return self.report.infrastructure.redis_url

    @property
    def database_url(self) -> str:
        if self.report is None:
            raise DemoError("the stack is not up")
        return self.report.infrastructure.database_url

    @property
    def policy_url(self) -> str:
        return stack.endpoint(next(s for s in stack.SERVICES if s.name == "policy")).base_url

    def api(self) -> httpx.Client:
        """A client of the policy API carrying the demo's key."""
        return httpx.Client(base_url=self.policy_url, headers={API_KEY_HEADER: self.api_key}, timeout=30.0)


Step = Callable[[DemoContext], str]
DEMO_DATABASE_SUFFIX = "_demo"


@dataclass(frozen=True)
class StepResult:
    name: str
    ok: bool
    detail: str
    elapsed_s: float


def bring_stack_up(ctx: DemoContext) -> str:
    """Start Redis and PostgreSQL if none answer, migrate, start the five services with this run's key."""
    ctx.report = stack.up(ctx.settings, ctx.service_env, fresh_database=True)
    embedded = [s.kind for s in ctx.report.infrastructure.embedded]
    infra = f"embedded {', '.join(embedded)}" if embedded else "external Redis and PostgreSQL"
    return f"{len(ctx.report.services)} services ready in {ctx.report.elapsed_s:.1f}s ({infra})"


def verify_ready(ctx: DemoContext) -> str:
    """Check every service is alive and answers /healthz and /readyz."""
    result = stack.status(ctx.settings)
    bad = [f"{s.name} (alive={s.alive}, healthz={s.healthz}, readyz={s.readyz})" for s in result.services
           if not s.ok]
    if bad:
        raise DemoError("not ready: " + "; ".join(bad))
    return "every service alive, /healthz and /readyz 200"


def show_health_and_metrics(ctx: DemoContext) -> str:
    """Read each service's /healthz and /metrics."""
    table = Table(title="services")
    for column in ("service", "port", "/healthz", "/metrics samples"):
        table.add_column(column)
    total = 0
    for ep in stack.endpoints():
        health = httpx.get(ep.base_url + "/healthz", timeout=ctx.settings.probe_timeout_s)
        metrics = httpx.get(ep.base_url + "/metrics", timeout=ctx.settings.probe_timeout_s)
        if health.status_code != 200 or metrics.status_code != 200:
            raise DemoError(f"{ep.spec.name}: /healthz {health.status_code}, /metrics {metrics.status_code}")
        samples = count_metric_samples(metrics.text)
        total += samples
        table.add_row(ep.spec.name, str(ep.port), Text(health.text), str(samples))
    ctx.console.print(table)
    return f"{total} metric samples across {len(stack.SERVICES)} services"


def count_metric_samples(exposition: str) -> int:
    """Sample lines (not comments) in a Prometheus text exposition."""
    return sum(1 for line in exposition.splitlines() if line and not line.startswith("#"))


def demo_bars(count: int = DEMO_BAR_COUNT) -> list[Bar]:
    """``count`` consecutive, valid one-minute SPY bars from the regular session's open."""
    bars = []
    for i in range(count):
        open_ = 530.0 + 0.1 * i
        close = open_ + (0.05 if i % 2 == 0 else -0.05)
        bars.append(Bar(symbol=DEMO_SYMBOL, start=DEMO_SESSION_OPEN + timedelta(minutes=i), open=open_,
                        high=max(open_, close) + 0.02, low=min(open_, close) - 0.02, close=close,
                        volume=1000.0 + i, session=Session.REGULAR, source="demo"))
    return bars


ROUND_TRIP_PREFIX = "demo:roundtrip:"


def publish_and_read_bars(ctx: DemoContext) -> str:
    """Publish demo bars to a private copy of ``md.bars`` (shared producer and codec), read them back,
    then delete that stream."""
    clock = SystemClock()
    sent = [make_envelope(bar, source="demo", clock=clock, ids=uuid_ids, ts_event=bar.start)
            for bar in demo_bars()]
    client = redis.Redis.from_url(ctx.redis_url, decode_responses=False)
    try:
        # A private key: the live services consume md.bars and must never see these demo bars.
        producer = StreamProducer(client, streams.MD_BARS, maxlen=ctx.settings.stream_maxlen,
                                  prefix=ctx.settings.stream_prefix + ROUND_TRIP_PREFIX)
        ids = producer.publish_many(sent)
        received = read_back(client, producer.key, ids)
        client.delete(producer.key)
    finally:
        client.close()
    check_round_trip(sent, received)
    return f"{len(received)} Bar envelopes published to {producer.key} and read back identical"


def read_back(client: redis.Redis, key: str, ids: list[str]) -> list[Envelope]:
    """Decode the entries ``ids`` of stream ``key`` (XRANGE over their span), in order."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(key, min=ids[0], max=ids[-1]))
    wanted = set(ids)
    return [CODEC.decode(fields[ENVELOPE_FIELD.encode()]) for entry_id, fields in entries
            if entry_id.decode() in wanted]


def check_round_trip(sent: list[Envelope], received: list[Envelope]) -> None:
    if len(received) != len(sent):
        raise DemoError(f"published {len(sent)} bars, read back {len(received)}")
    for out, back in zip(sent, received, strict=True):
        if back.id != out.id or back.payload != out.payload:
            raise DemoError(f"envelope {out.id} came back different: {back.payload!r}")


# --- market data --------------------------------------------------------------------------------


def load_market(ctx: DemoContext) -> str:
    """Store the synthetic market from the first training day to the paper day (ingestion backfill)."""
    from scalper_ingestion.backfill import SourceKind, make_history_source, run_backfill
    from scalper_ingestion.settings import IngestionSettings
    from scalper_ingestion.writer import BarWriter
    from scalper_shared.db import make_engine
    from scalper_shared.settings import load_settings

    plan = ctx.plan
    source = make_history_source(SourceKind.SYNTHETIC, load_settings(IngestionSettings), MARKET_SYMBOLS,
                                 plan.train_from, plan.paper_day)
    engine = make_engine(ctx.database_url)
    try:
        total = run_backfill(source, BarWriter(engine, None, clock=SystemClock()))
    finally:
        engine.dispose()
    if total.stored == 0:
        raise DemoError("the synthetic source produced no bars")
    return (f"{total.stored:,} bars of {', '.join(MARKET_SYMBOLS)} stored for {plan.train_from}..{plan.paper_day} "
            f"({total.quarantined} quarantined; not published, the services see only the paper day)")


# --- training -----------------------------------------------------------------------------------


def train_model(ctx: DemoContext) -> str:
    """``POST /v1/training-jobs`` on the stored bars, then follow the job to its end."""
    with ctx.api() as http:
        accepted = TrainingJobAccepted.model_validate(checked(http.post(
            "/v1/training-jobs", json=ctx.plan.train_config(), headers={"Idempotency-Key": uuid.uuid4().hex})))
        ctx.console.print(f"training job {accepted.id} {accepted.state} "
                          f"({ctx.plan.timesteps:,} steps, {ctx.plan.n_envs} envs)", highlight=False)
        view = follow_training(http, accepted.id, ctx.console, ctx.plan.poll_s, ctx.plan.training_timeout_s)
    render_diagnostics(ctx.console, view.diagnostics, view.warnings, f"checkpoints of {view.id} on the validation days")
    if view.state is not JobState.FINISHED or not view.model_id:
        raise DemoError(f"training job {view.id} {view.state}: {view.error or 'no model'}")
    ctx.facts.model_id, ctx.facts.diagnostics = view.model_id, view.diagnostics
    rate = view.progress.steps_per_second if view.progress else 0.0
    return f"model {view.model_id} after {ctx.plan.timesteps:,} steps ({rate:,.0f} steps/s)"


# --- evaluation ---------------------------------------------------------------------------------


def evaluate_model(ctx: DemoContext) -> str:
    """``POST /v1/evaluations`` on the held-out week; download the report under ``var/reports/<model>/``."""
    from scalper_cli.evaluation_report import download

    model_id = ctx.facts.trained_model()
    with ctx.api() as http:
        accepted = EvaluationAccepted.model_validate(
            checked(http.post("/v1/evaluations", json=ctx.plan.evaluation_request(model_id))))
        view = follow_evaluation(http, accepted.id, ctx.console, ctx.plan.poll_s, ctx.plan.evaluation_timeout_s)
        if view.status is not EvaluationStatus.FINISHED or view.metrics is None:
            raise DemoError(f"evaluation {view.id} {view.status}: {view.error}")
        ctx.facts.report = download(http, view.id, ctx.settings.var_dir / "reports" / model_id)
    ctx.facts.metrics = view.metrics
    ctx.console.print(view.metrics.summary, highlight=False)
    return f"{ctx.plan.evaluation_from}..{ctx.plan.evaluation_to} against 3 baselines; report {ctx.facts.report}"


# --- promotion and paper ------------------------------------------------------------------------


def promote_model(ctx: DemoContext, timeout_s: float = 60.0) -> str:
    """``POST /v1/models/{id}/promote`` (admin), then wait until the policy serves it."""
    model_id = ctx.facts.trained_model()
    with ctx.api() as http:
        view = ModelView.model_validate(checked(http.post(f"/v1/models/{model_id}/promote")))
        deadline = time.monotonic() + timeout_s
        while ServedModelView.model_validate(checked(http.get("/v1/policy/model"))).model_id != model_id:
            if time.monotonic() > deadline:
                raise DemoError(f"the policy did not serve {model_id} within {timeout_s:.0f}s of its promotion")
            time.sleep(0.5)
    ctx.facts.artifact_dir = Path(view.artifact_path)
    return f"{model_id} promoted; the policy serves it"


def paper_day(ctx: DemoContext) -> str:
    """Replay the paper day through the services in their own namespace (``scalper paper``), against the backtest."""
    from scalper_cli.paper_services import run_paper
    from scalper_cli.paper_table import render
    from scalper_trainer.evaluation.paper import PaperRequest

    if ctx.facts.artifact_dir is None:
        raise DemoError("no promoted model artifact")
    result = run_paper(PaperRequest(ctx.facts.artifact_dir, ctx.plan.paper_day, ctx.redis_url, ctx.database_url,
                                    ctx.settings.stream_prefix, stream_maxlen=ctx.settings.stream_maxlen))
    render(result)
    ctx.facts.paper = result
    first = result.first_difference
    if first is not None:
        raise DemoError(f"{ctx.plan.paper_day}: paper trades DIFFER from the backtest; first difference: "
                        f"{first.describe()}")
    return f"{ctx.plan.paper_day}: {len(result.paper)} paper trades, equal to the backtest"


STEPS: list[tuple[str, Step]] = [
    ("stack up", bring_stack_up),
    ("services ready", verify_ready),
    ("health and metrics", show_health_and_metrics),
    ("bars round trip", publish_and_read_bars),
    ("load synthetic market", load_market),
    ("train", train_model),
    ("evaluate", evaluate_model),
    ("promote", promote_model),
    ("paper day", paper_day),
]


def run_steps(ctx: DemoContext, steps: list[tuple[str, Step]]) -> list[StepResult]:
    """Run steps in order, saying what each does and how long it took; stop at the first failure."""
    results = []
    for name, step in steps:
        began = time.monotonic()
        what = step.__doc__.strip().splitlines()[0].replace("``", "") if step.__doc__ else ""
        ctx.console.print(f"[bold]>> {name}[/]" + (f": {what}" if what else ""), highlight=False)
        try:
            detail, ok = step(ctx), True
        except Exception as exc:  # a failed step is reported, then the stack comes down
            logger.debug("demo step %s failed", name, exc_info=True)
            detail, ok = f"{type(exc).__name__}: {exc}", False
        result = StepResult(name, ok, detail, round(time.monotonic() - began, 2))
        results.append(result)
        status = "[green]ok[/]" if ok else "[red]FAILED[/]"
        ctx.console.print(f"   {status} in {result.elapsed_s:.1f}s: ", Text(detail), highlight=False)
        if not ok:
            break
    return results


def bring_stack_down(ctx: DemoContext) -> StepResult:
    began = time.monotonic()
    stops = stack.down(ctx.settings)
    killed = [r.name for r in stops if r.outcome == "killed"]
    detail = f"stopped {sum(r.outcome == 'stopped' for r in stops)} processes"
    if killed:
        detail += f"; had to SIGKILL {', '.join(killed)}"
    return StepResult("stack down", not killed, detail, round(time.monotonic() - began, 2))


def render_summary(console: Console, results: list[StepResult]) -> None:
    table = Table(title="scalper demo")
    for column in ("step", "result", "detail", "time (s)"):
        table.add_column(column)
    for r in results:
        table.add_row(r.name, "[green]ok[/]" if r.ok else "[red]FAILED[/]", Text(r.detail), f"{r.elapsed_s:.1f}")
    console.print(table)


def decision_step_lines(diagnostics: list[Diagnostics]) -> list[str]:
    """The last checkpoint's probabilities where the agent really chooses (flat, entry allowed)."""
    if not diagnostics:
        return []
    last = diagnostics[-1]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    return [f"decision steps at step {last.step:,}: P(HOLD) {pct(last.hold_share)}, P(BUY) {pct(last.buy_share)}; "
            f"P(BUY) on strong setups {pct(last.setup_buy_rate)} vs elsewhere {pct(last.nonsetup_buy_rate)} "
            "(a uniform policy shows 33% / 67%; only the setup gap shows learning)"]


def metrics_lines(metrics: EvaluationMetrics) -> list[str]:
    """The evaluation's verdict, P&L against the best baseline with its interval, trades per day."""
    perf, sig = metrics.performance, metrics.significance
    days = f" over {metrics.window.days} held-out days" if metrics.window else ""
    lines = [f"verdict: {metrics.summary}", f"agent P&L: ${perf.total_pnl:,.2f}{days}"]
    if sig.best_baseline is not None and sig.best_baseline_total_pnl is not None:
        lines[-1] += f"; best baseline {sig.best_baseline}: ${sig.best_baseline_total_pnl:,.2f}"
    if sig.mean_daily_difference is not None and sig.ci_low is not None and sig.ci_high is not None:
        lines.append(f"agent - best baseline, mean daily: ${sig.mean_daily_difference:,.2f}, "
                     f"95% CI [{sig.ci_low:,.2f}, {sig.ci_high:,.2f}]"
                     + (" (includes 0: no evidence of skill)" if sig.ci_includes_zero else ""))
    hold = metrics.action_stability.action_shares.get("HOLD", 0.0) if metrics.action_stability else None
    lines.append(f"trades/day: {metrics.trades_per_day.mean_per_day:.1f}"
                 + (f"; HOLD: {hold:.1%} of actions" if hold is not None else ""))
    return lines


def paper_line(paper: PaperResult) -> str:
    p50, p99 = paper.latency_percentile(50), paper.latency_percentile(99)
    latency = ("no orders, no latency" if p50 is None or p99 is None else
               f"bar -> order latency p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(paper.latencies_ms)} orders)")
    if paper.exact and not paper.paper:
        parity = "paper trades equal the backtest exactly (no trades on either side: parity holds trivially)"
    elif paper.exact:
        parity = "paper trades equal the backtest exactly"
    else:
        parity = f"paper trades DIFFER from the backtest ({len(paper.differences)} differences)"
    return f"paper day {paper.day}: {len(paper.paper)} trades, P&L ${paper.paper_pnl:,.2f}; {latency}; {parity}"


def outcome_lines(facts: DemoFacts, docs_url: str, stack_up: bool = False) -> list[str]:
    """The plain-text outcome of the loop, from what the steps found (only what they got to)."""
    lines = [f"report: {facts.report}"] if facts.report is not None else []
    if facts.metrics is not None:
        lines.extend(metrics_lines(facts.metrics))
    lines.extend(decision_step_lines(facts.diagnostics))
    if facts.paper is not None:
        lines.append(paper_line(facts.paper))
    if stack_up:
        lines.append(f"API docs: {docs_url} (ReDoc: {docs_url.removesuffix('/docs')}/redoc)")
    else:  # the stack was stopped above: say how to get the docs served, not a dead address
        lines.append(f"API docs: {docs_url} once the stack is up (scalper stack up, or scalper demo --keep-up)")
    return lines


def demo_database_url(database_url: str) -> str:
    """The demo's own database on the same server: ``<name>_demo`` (``scalper`` -> ``scalper_demo``).
    The demo drops and recreates it on every run, so a run never sees an earlier run's orders, tallies or
    models, and the user's own database is never touched."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    name = url.database or "scalper"
    return url.set(database=name if name.endswith(DEMO_DATABASE_SUFFIX) else name + DEMO_DATABASE_SUFFIX) \
        .render_as_string(hide_password=False)


def run_demo(settings: StackSettings, console: Console, steps: list[tuple[str, Step]] = STEPS,
             plan: DemoPlan | None = None, keep_up: bool = False) -> bool:
    """Run the demo steps, bring the stack down (unless ``keep_up``), print the summary; True when all passed.
    The stack runs on the demo's own fresh database (:func:`demo_database_url`)."""
    settings = settings.model_copy(update={"database_url": demo_database_url(settings.database_url)})

    key, record = new_api_key()
    plan = plan or DemoPlan()
    ctx = DemoContext(settings, console, plan, key, service_environment(record))
    results: list[StepResult] = []
    try:
        results = run_steps(ctx, steps)
    finally:
        if not keep_up:
            results.append(bring_stack_down(ctx))
    render_summary(console, results)
    for line in outcome_lines(ctx.facts, ctx.policy_url + "/docs", stack_up=keep_up):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if keep_up:
        console.print(f"the stack is still up (scalper stack down stops it); this run's admin key: {key}",
                      highlight=False, markup=False, soft_wrap=True)
    return all(r.ok for r in results) and len(results) == len(steps) + (0 if keep_up else 1)
