"""``scalper demo``: bring the stack up, exercise what exists end to end, summarise, bring it down.

The demo is a list of small steps (:data:`STEPS`); each takes the shared :class:`DemoContext` and
returns a one-line result, or raises :class:`DemoError` (or any error) to fail the demo. Later
work appends steps (ingestion -> features -> training -> evaluation). The stack is always brought
down at the end, whatever happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import redis
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scalper_cli import stack
from scalper_cli.settings import StackSettings
from scalper_shared.bus import ENVELOPE_FIELD, StreamProducer
from scalper_shared.clock import SystemClock, uuid_ids
from scalper_shared.schema import CODEC, Bar, Envelope, Session, make_envelope, streams

logger = logging.getLogger(__name__)

DEMO_BAR_COUNT = 5
DEMO_SYMBOL = "SPY"
DEMO_SESSION_OPEN = datetime(2024, 6, 3, 13, 30, tzinfo=UTC)


class DemoError(RuntimeError):
    """A demo step found the stack not doing what it should; the message says what."""


@dataclass
class DemoContext:
    settings: StackSettings
    console: Console
    report: stack.UpReport | None = None
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        if self.report is None:
            raise DemoError("the stack is not up")
        return self.report.infrastructure.redis_url


Step = Callable[[DemoContext], str]


@dataclass(frozen=True)
class StepResult:
    name: str
    ok: bool
    detail: str
    elapsed_s: float


def bring_stack_up(ctx: DemoContext) -> str:
    ctx.report = stack.up(ctx.settings)
    embedded = [s.kind for s in ctx.report.infrastructure.embedded]
    infra = f"embedded {', '.join(embedded)}" if embedded else "external Redis and PostgreSQL"
    return f"{len(ctx.report.services)} services ready in {ctx.report.elapsed_s:.1f}s ({infra})"


def verify_ready(ctx: DemoContext) -> str:
    result = stack.status(ctx.settings)
    bad = [f"{s.name} (alive={s.alive}, healthz={s.healthz}, readyz={s.readyz})" for s in result.services
           if not s.ok]
    if bad:
        raise DemoError("not ready: " + "; ".join(bad))
    return "every service alive, /healthz and /readyz 200"


def show_health_and_metrics(ctx: DemoContext) -> str:
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


def publish_and_read_bars(ctx: DemoContext) -> str:
    """Publish demo bars to ``md.bars`` (shared producer and codec), read them back, then remove them."""
    clock = SystemClock()
    sent = [make_envelope(bar, source="demo", clock=clock, ids=uuid_ids, ts_event=bar.start)
            for bar in demo_bars()]
    client = redis.Redis.from_url(ctx.redis_url, decode_responses=False)
    try:
        producer = StreamProducer(client, streams.MD_BARS, maxlen=ctx.settings.stream_maxlen,
                                  prefix=ctx.settings.stream_prefix)
        ids = producer.publish_many(sent)
        received = read_back(client, producer.key, ids)
        client.xdel(producer.key, *ids)
    finally:
        client.close()
    check_round_trip(sent, received)
    return f"{len(received)} Bar envelopes published to {producer.key} and read back identical"


def read_back(client: redis.Redis, key: str, ids: list[str]) -> list[Envelope]:
    """Decode the entries ``ids`` of stream ``key`` (XRANGE over their span), in order."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(key, min=ids[0], max=ids[-1])  # type: ignore[assignment]
    wanted = set(ids)
    return [CODEC.decode(fields[ENVELOPE_FIELD.encode()]) for entry_id, fields in entries
            if entry_id.decode() in wanted]


def check_round_trip(sent: list[Envelope], received: list[Envelope]) -> None:
    if len(received) != len(sent):
        raise DemoError(f"published {len(sent)} bars, read back {len(received)}")
    for out, back in zip(sent, received, strict=True):
        if back.id != out.id or back.payload != out.payload:
            raise DemoError(f"envelope {out.id} came back different: {back.payload!r}")


STEPS: list[tuple[str, Step]] = [
    ("stack up", bring_stack_up),
    ("services ready", verify_ready),
    ("health and metrics", show_health_and_metrics),
    ("bars round trip", publish_and_read_bars),
]


def run_steps(ctx: DemoContext, steps: list[tuple[str, Step]]) -> list[StepResult]:
    """Run steps in order, stopping at the first failure."""
    results = []
    for name, step in steps:
        began = time.monotonic()
        ctx.console.print(f"[bold]>> {name}[/]")
        try:
            detail, ok = step(ctx), True
        except Exception as exc:  # a failed step is reported, then the stack comes down
            logger.debug("demo step %s failed", name, exc_info=True)
            detail, ok = f"{type(exc).__name__}: {exc}", False
        results.append(StepResult(name, ok, detail, round(time.monotonic() - began, 2)))
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


def run_demo(settings: StackSettings, console: Console, steps: list[tuple[str, Step]] = STEPS) -> bool:
    """Run the demo steps, always bring the stack down, print the summary; True when all passed."""
    ctx = DemoContext(settings, console)
    try:
        results = run_steps(ctx, steps)
    finally:
        results_down = bring_stack_down(ctx)
    results = [*results, results_down]
    render_summary(console, results)
    return all(r.ok for r in results) and len(results) == len(steps) + 1
