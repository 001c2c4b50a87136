"""Paper mode: one stored day through the live services' cores in a namespace of its own, against the backtest.

The paper/parity logic behind ``scalper paper`` and the demo's paper step (the CLI only calls
:func:`run_paper_day` and prints the typed :class:`PaperResult`). A paper run never touches the live
stack: it gets

- its own database (``<name>_paper`` on the same server, recreated each run): the model is registered
  and promoted there, and each minute's stored bars are written there just before the replay
  publishes them, as ingestion does live;
- its own stream prefix (``<prefix>paper:<run>:``), hence its own streams, consumer groups and decision
  claims, deleted at the end;
- a :class:`~scalper_shared.clock.ReplayClock`: before each replayed minute goes out the clock moves to
  that bar's close, and runs on with the wall clock until the next minute, so every age the services
  measure (the policy's decision max age, execution's bar and decision times, the features' minute
  wait) is measured in replay time, exactly as it would be live on that day.

The services (features, policy decisions, execution with the deterministic paper broker, under the
model's saved risk-and-sizing and premium configs) are started on that namespace by the caller's
``start_services`` (the CLI, which may import them; this package may not). :func:`run_paper_day`
replays the day's bars (``replay``: ``scalper_ingestion.replay.replay_days``) minute by minute in
lockstep: after each minute it waits until every consumer of the chain has nothing pending nor unread
(and, when the features still hold a minute waiting for a symbol's bar, lets the features' wait pass in
replay time), so the next minute's bars cannot overtake a decision, as they never do in the backtest.
It then reads execution's trades (``orders`` / ``fills``), the bar-to-order latencies (the bar's
publication -> the order execution recorded before sending it; wall time, since the replay clock runs
with it between minutes), and runs the evaluation engine on the same bars with the same model
(:func:`backtest_trades`). Both trade lists are equal field by field unless something differs; the
first difference is named with its likely cause.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import redis
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.engine import make_url

from scalper_shared.bus import StreamProducer
from scalper_shared.bus.groups import group_backlog as bus_group_backlog
from scalper_shared.clock import ReplayClock
from scalper_shared.core.calendar import trading_day
from scalper_shared.core.lifecycle import ExitReason, Side
from scalper_shared.core.premium import PremiumModelConfig, normalise_symbol
from scalper_shared.core.risk import RiskConfig
from scalper_shared.db import bars, make_engine, migrate
from scalper_shared.db.engine import recreate_database
from scalper_shared.db.training import promote_model
from scalper_shared.schema import streams
from scalper_shared.schema.messages import OptionRight

if TYPE_CHECKING:  # scalper_trainer.env imports stable-baselines3 (torch): the CLI imports this module without it
    from scalper_trainer.env import MarketTape
    from scalper_trainer.env.core import Fill

logger = logging.getLogger(__name__)

CHAIN: tuple[tuple[str, str], ...] = tuple((stream, streams.group_of(service, stream)) for service, stream in (
    ("features", streams.MD_BARS), ("execution", streams.MD_BARS),
    ("policy", streams.FEATURES_VECTORS), ("policy", streams.POSITIONS_STATE),
    ("execution", streams.POLICY_DECISIONS), ("policy", streams.POSITIONS_STATE),
))
"""(stream, consumer group of the registry) in the order work flows through the services."""
MINUTE = timedelta(minutes=1)
PAPER_DATABASE_SUFFIX = "_paper"


class PaperError(RuntimeError):
    """The paper day could not run; the message says what."""


@dataclass(frozen=True, slots=True)
class PaperTrade:
    """One trade in the comparison's terms. Rows are minutes of the session (0 = the 09:30 ET bar)."""

    symbol: str
    side: int
    entry_row: int
    exit_row: int
    exit_reason: str
    entry_price: float
    exit_prices: tuple[float, ...]
    contracts: int
    pnl: float


@dataclass
class PaperResult:
    model_id: str
    day: date
    minutes: int
    bars: int
    seconds: float
    paper: list[PaperTrade]
    backtest: list[PaperTrade]
    latencies_ms: list[float] = field(default_factory=list)
    namespace: str = ""
    """The run's stream prefix."""
    database: str = ""
    """The run's database (its orders and fills stay there until the next run)."""

    @property
    def differences(self) -> list[str]:
        return compare_trades(self.paper, self.backtest)

    @property
    def first_difference(self) -> TradeDifference | None:
        """The first trade (in symbol, entry order) where paper and backtest differ, and why."""
        return first_difference(self.paper, self.backtest)

    @property
    def exact(self) -> bool:
        return not self.differences

    @property
    def paper_pnl(self) -> float:
        return sum(t.pnl for t in self.paper)

    @property
    def backtest_pnl(self) -> float:
        return sum(t.pnl for t in self.backtest)

    def latency_percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else None


# --- the namespace ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperNamespace:
    """Where one paper run's services live and what they trade under."""

    redis_url: str
    database_url: str
    """The run's own database."""
    stream_prefix: str
    """The run's own stream prefix (its streams, consumer groups and claim keys)."""
    symbols: tuple[str, ...]
    risk: RiskConfig
    """Execution's risk-and-sizing config (the model's unless the request forces another)."""
    premium: PremiumModelConfig
    allow_config_mismatch: bool
    """Execution acts on the model although ``risk`` differs from the model's (a forced difference)."""
    clock: ReplayClock
    minute_wait_s: float
    """How long (replay time) the features wait for a symbol's bar of a minute."""
    bar_wait_s: float
    """How long (wall time) execution holds a decision for its own bar."""
    stream_maxlen: int


class PaperServices(Protocol):
    """The services' cores running on a :class:`PaperNamespace` (what the lockstep needs of them)."""

    def pending_minutes(self) -> int:
        """Minutes the features still hold, waiting for a symbol's bar."""
        ...

    def flush_features(self) -> None:
        """Release the minutes whose wait is over (on the replay clock)."""
        ...


StartServices = Callable[[PaperNamespace], AbstractContextManager[PaperServices]]
"""Starts the services on the namespace once the policy serves the model; stops them on exit."""


class ReplayOutcome(Protocol):
    @property
    def minutes(self) -> int: ...

    @property
    def published(self) -> int: ...


ReplayDays = Callable[..., ReplayOutcome]
"""``scalper_ingestion.replay.replay_days``: (engine, producer, days, *, speed, symbols, clock, on_minute,
before_minute)."""


def paper_database_url(database_url: str) -> str:
    """The paper runs' database on the same server: ``<name>_paper``."""
    url = make_url(database_url)
    name = url.database or "scalper"
    return url.set(database=name if name.endswith(PAPER_DATABASE_SUFFIX) else name + PAPER_DATABASE_SUFFIX) \
        .render_as_string(hide_password=False)


def prepare_database(paper_url: str, artifact_dir: Path) -> str:
    """Recreate the paper database, register the model of ``artifact_dir`` there and promote it; returns
    the model id. No bars yet: as live, they arrive minute by minute (:class:`DayBars`)."""
    from scalper_trainer.registry import read_manifest, register_model

    recreate_database(paper_url)
    migrate(paper_url)
    paper = make_engine(paper_url)
    try:
        model_id = register_model(paper, read_manifest(artifact_dir), artifact_dir)
        if promote_model(paper, model_id) is None:
            raise PaperError(f"model {model_id} could not be promoted in {make_url(paper_url).database}")
    finally:
        paper.dispose()
    return model_id


def delete_namespace(client: redis.Redis, prefix: str) -> int:
    """Delete every key of the run's namespace (its streams, groups and claim keys)."""
    keys = list(client.scan_iter(match=prefix.replace("*", r"\*") + "*", count=1000))
    return int(client.delete(*keys)) if keys else 0


# --- the lockstep ----------------------------------------------------------------------------------


def group_backlog(client: redis.Redis, key: str, group: str) -> int:
    """Entries of ``key`` the group has not acknowledged: pending plus not yet delivered."""
    backlog = bus_group_backlog(client, key, group)
    return 0 if backlog is None else backlog.unprocessed


def wait_settled(client: redis.Redis, prefix: str, timeout_s: float, poll_s: float = 0.002) -> None:
    """Return once one pass over :data:`CHAIN`, in flow order, finds every group caught up."""
    deadline = time.monotonic() + timeout_s
    while True:
        busy = next(((key, group) for key, group in CHAIN if group_backlog(client, prefix + key, group)), None)
        if busy is None:
            return
        if time.monotonic() > deadline:
            raise PaperError(f"group {busy[1]} on {busy[0]} still has work after {timeout_s:.0f}s")
        time.sleep(poll_s)


def wait_groups(client: redis.Redis, prefix: str, timeout_s: float, poll_s: float = 0.01) -> None:
    """Return once every consumer group of :data:`CHAIN` exists (the services' consumers are up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = next(((key, group) for key, group in CHAIN if bus_group_backlog(client, prefix + key, group) is None),
                       None)
        if missing is None:
            return
        if time.monotonic() > deadline:
            raise PaperError(f"group {missing[1]} on {missing[0]} not created within {timeout_s:.0f}s")
        time.sleep(poll_s)


class DayBars:
    """The stored bars of one day, written into the paper database minute by minute as the replay
    publishes them (as ingestion writes a bar before publishing it: the features read the table)."""

    def __init__(self, stored: Engine, paper: Engine, day: date, symbols: Sequence[str]) -> None:
        session = trading_day(day)
        if session is None:
            raise PaperError(f"{day} is not a trading day")
        query = select(bars).where(bars.c.start >= session.pre_open, bars.c.start < session.post_close,
                                   bars.c.symbol.in_(list(symbols)))
        with stored.connect() as c:
            rows = [dict(r._mapping) for r in c.execute(query)]
        self._by_minute: dict[datetime, list[dict[str, object]]] = {}
        for row in rows:
            self._by_minute.setdefault(row["start"], []).append(row)
        self._paper = paper

    def write(self, minute: datetime) -> None:
        rows = self._by_minute.get(minute)
        if rows:
            with self._paper.begin() as c:
                c.execute(insert(bars), rows)


class LockstepReplay:
    """The replay's hooks: before a minute goes out, move the clock to its close and store its bars;
    after, settle."""

    def __init__(self, client: redis.Redis, namespace: PaperNamespace, services: PaperServices,
                 day_bars: DayBars, timeout_s: float) -> None:
        self._client, self._ns, self._services, self._timeout_s = client, namespace, services, timeout_s
        self._day_bars = day_bars
        self.published_at: dict[datetime, datetime] = {}
        """Bar start -> replay time its minute went out."""

    def before_minute(self, minute: datetime) -> None:
        self._ns.clock.advance_to(minute + MINUTE)
        self._day_bars.write(minute)
        self.published_at[minute] = self._ns.clock.now()

    def after_minute(self, bars_published: int) -> None:
        wait_settled(self._client, self._ns.stream_prefix, self._timeout_s)
        if self._services.pending_minutes():  # a symbol's bar is missing: live, its wait would pass first
            self._ns.clock.advance_to(self._ns.clock.now() + timedelta(seconds=self._ns.minute_wait_s))
            self._services.flush_features()
            wait_settled(self._client, self._ns.stream_prefix, self._timeout_s)


# --- what execution did ----------------------------------------------------------------------------

_FILLS = text("""
    SELECT o.symbol, o.trade_id, o.side, o.option_right, o.reason, f.contracts, f.price, f.commission, f.filled_at
    FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id
    WHERE f.filled_at > :first AND f.filled_at <= :last
    ORDER BY f.filled_at, o.side, f.fill_id""")


def session_row(day: date, bar_close: datetime) -> int:
    """The session row of the bar closing at ``bar_close``."""
    session = trading_day(day)
    if session is None:
        raise PaperError(f"{day} is not a trading day")
    return int((bar_close - MINUTE - session.open) // MINUTE)


@dataclass(slots=True)
class _OpenTrade:
    """A live trade between its entry fill and the fill that leaves it flat."""

    symbol: str
    side: int
    entry_row: int
    entry_price: float
    contracts: int
    held: int
    pnl: float
    exits: list[float] = field(default_factory=list)


def live_trades(db: Engine, day: date, multiplier: int = 100) -> list[PaperTrade]:
    """Execution's trades of ``day`` from its ``orders`` and ``fills`` tables."""
    session = trading_day(day)
    if session is None:
        raise PaperError(f"{day} is not a trading day")
    with db.connect() as c:
        rows = c.execute(_FILLS, {"first": session.pre_open, "last": session.post_close}).all()
    trades: list[PaperTrade] = []
    open_trades: dict[str, _OpenTrade] = {}
    for r in rows:
        if r.side == "buy":
            open_trades[r.trade_id] = _OpenTrade(r.symbol, int(Side.of_right(OptionRight(r.option_right))),
                                                 session_row(day, r.filled_at), float(r.price), int(r.contracts),
                                                 held=int(r.contracts), pnl=-float(r.commission))
            continue
        trade = open_trades[r.trade_id]
        trade.held -= int(r.contracts)
        trade.exits.append(float(r.price))
        trade.pnl += (float(r.price) - trade.entry_price) * int(r.contracts) * multiplier - float(r.commission)
        if trade.held == 0:
            trades.append(PaperTrade(trade.symbol, trade.side, trade.entry_row, session_row(day, r.filled_at),
                                     str(ExitReason.parse(r.reason)), trade.entry_price, tuple(trade.exits),
                                     trade.contracts, trade.pnl))
            del open_trades[r.trade_id]
    if open_trades:
        logger.warning("%s trade(s) still open after the day: %s", len(open_trades), sorted(open_trades))
    return sorted(trades, key=lambda t: (t.symbol, t.entry_row))


def order_latencies_ms(db: Engine, published_at: dict[datetime, datetime]) -> list[float]:
    """Bar publication (minute ``m``'s bars) -> the order execution recorded for the decision on ``m``."""
    query = text("SELECT decision_id, created_at FROM orders WHERE decision_id LIKE 'pd:%'")
    with db.connect() as c:
        rows = c.execute(query).all()
    out = []
    for r in rows:
        minute = datetime.fromtimestamp(int(str(r.decision_id).rsplit(":", 1)[1]) / 1000, tz=UTC)
        if minute in published_at:
            out.append((r.created_at - published_at[minute]).total_seconds() * 1000)
    return out


# --- the backtest ----------------------------------------------------------------------------------


def backtest_trades(database_url: str, artifact_dir: Path, day: date, symbols: Sequence[str]) -> list[PaperTrade]:
    """The evaluation engine's trades of ``day`` with the model's numpy policy, deterministic, under
    the model's saved risk-and-sizing and premium configs (one account for all symbols)."""
    from scalper_trainer.env import MarketTape, load_episodes
    from scalper_trainer.evaluation.engine import evaluate
    from scalper_trainer.evaluation.policies import AgentPolicy
    from scalper_trainer.evaluation.run import load_artifact

    artifact = load_artifact(artifact_dir, artifact_dir)
    config = artifact.env_config()
    tape = MarketTape(load_episodes(database_url, list(symbols), day, day), config)
    result = evaluate(AgentPolicy(artifact.network), tape, config)
    return trades_from_fills(result.fills, tape)


def tape_session_row(tape: MarketTape, fill: Fill) -> int:
    """The session row (minutes since the open; 0 = the 09:30 bar) of a fill's tape row. An episode's
    grid starts at its first real bar, which is not the open on a day whose first minutes are missing."""
    row = int(tape.episodes.offsets[fill.episode]) + fill.row - int(tape.first_row[fill.episode])
    return int(tape.episodes.minute_of_day[row]) - 1


def trades_from_fills(fills: Sequence[Fill], tape: MarketTape) -> list[PaperTrade]:
    """Group the environment's fills (entry, then sells until flat) into :class:`PaperTrade`."""
    from scalper_trainer.env.core import ENTRY

    trades: list[PaperTrade] = []
    entry: Fill | None = None
    exits: list[float] = []
    pnl, sold = 0.0, 0
    for fill in sorted(fills, key=lambda f: (f.episode, f.row, f.reason != ENTRY)):
        if fill.reason == ENTRY:
            entry, exits, pnl, sold = fill, [], 0.0, 0
            continue
        if entry is None:
            raise PaperError(f"a {fill.reason} fill on row {fill.row} without an entry")
        exits.append(fill.price)
        pnl += fill.pnl
        sold += fill.contracts
        if sold >= entry.contracts:
            symbol = normalise_symbol(tape.episodes.symbols[entry.episode])
            trades.append(PaperTrade(symbol, entry.side, tape_session_row(tape, entry), tape_session_row(tape, fill),
                                     fill.reason, entry.price, tuple(exits), entry.contracts, pnl))
            entry = None
    return sorted(trades, key=lambda t: (t.symbol, t.entry_row))


FIELDS = ("symbol", "side", "entry_row", "contracts", "entry_price", "exit_row", "exit_reason", "exit_prices", "pnl")
"""Compared in causal order: the entry (what, when, how many, at what premium), then its exits."""
CAUSES = {
    "missing": "a trade on one side only: the policy decided differently on that minute (another observation "
               "or mask), or execution denied the entry (see its risk_events)",
    "symbol": "the trades are out of step: an earlier entry happened on one side only",
    "side": "the policy chose the other option right: its observation differed",
    "entry_row": "the entry happened at another minute: the policy's decision or execution's acceptance differed",
    "exit_row": "the position closed at another minute: a different exit rule fired, or the agent exited elsewhere",
    "exit_reason": "a different exit rule closed the position (lifecycle order, stop or flatten timing)",
    "entry_price": "the entry filled at another premium: the quote (bar, strike or vol input) differed",
    "contracts": "another entry size: the risk-and-sizing configs differ",
    "exit_prices": "the exits filled at other premiums: their bars or fill timing differed",
    "pnl": "the trade's P&L differs: fees or fills differed",
}
"""For each compared field, what a difference there usually means."""


@dataclass(frozen=True, slots=True)
class TradeDifference:
    """The first difference between the paper and backtest trade lists."""

    index: int
    """Position in the (symbol, entry) ordered lists."""
    field: str
    """A :class:`PaperTrade` field, or ``missing`` when one side has no trade at ``index``."""
    paper: PaperTrade | None
    backtest: PaperTrade | None
    cause: str

    def describe(self) -> str:
        def show(t: PaperTrade | None) -> str:
            return "none" if t is None else (f"{t.symbol} {'call' if t.side > 0 else 'put'} row {t.entry_row}->"
                                             f"{t.exit_row} {t.exit_reason} {t.contracts}x @{t.entry_price:.2f} "
                                             f"P&L {t.pnl:,.2f}")
        return (f"trade {self.index}: {self.field} differs (paper: {show(self.paper)}; backtest: "
                f"{show(self.backtest)}): {self.cause}")


def _same(name: str, p: PaperTrade, b: PaperTrade) -> bool:
    if name == "pnl":
        return abs(p.pnl - b.pnl) <= 1e-6
    if name == "exit_prices":
        return not b.exit_prices or p.exit_prices == b.exit_prices
    return bool(getattr(p, name) == getattr(b, name))


def first_difference(paper: Sequence[PaperTrade], backtest: Sequence[PaperTrade]) -> TradeDifference | None:
    for i in range(max(len(paper), len(backtest))):
        p = paper[i] if i < len(paper) else None
        b = backtest[i] if i < len(backtest) else None
        if p is None or b is None:
            return TradeDifference(i, "missing", p, b, CAUSES["missing"])
        name = next((n for n in FIELDS if not _same(n, p, b)), None)
        if name is not None:
            return TradeDifference(i, name, p, b, CAUSES[name])
    return None


def compare_trades(paper: Sequence[PaperTrade], backtest: Sequence[PaperTrade]) -> list[str]:
    """Every field that differs, trade by trade (empty: exact parity). P&L equal to 1e-6 dollars."""
    out = []
    if len(paper) != len(backtest):
        out.append(f"{len(paper)} paper trades vs {len(backtest)} backtest trades")
    for i, (p, b) in enumerate(zip(paper, backtest, strict=False)):
        for name in ("symbol", "side", "entry_row", "exit_row", "exit_reason", "entry_price", "contracts"):
            if getattr(p, name) != getattr(b, name):
                out.append(f"trade {i}: {name} paper={getattr(p, name)!r} backtest={getattr(b, name)!r}")
        if b.exit_prices and p.exit_prices != b.exit_prices:
            out.append(f"trade {i}: exit prices paper={p.exit_prices} backtest={b.exit_prices}")
        if abs(p.pnl - b.pnl) > 1e-6:
            out.append(f"trade {i}: pnl paper={p.pnl:.6f} backtest={b.pnl:.6f}")
    return out


# --- the run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperRequest:
    """One paper day: which model, which stored day, and where the stored bars and Redis are."""

    artifact_dir: Path
    day: date
    redis_url: str
    database_url: str
    """Where the day's bars are stored (read only; the run gets its own database beside it)."""
    stream_prefix: str = ""
    """The live stack's prefix; the run's namespace is ``<prefix>paper:<run id>:``."""
    speed: float = 0.0
    risk: RiskConfig | None = None
    """Execution's risk-and-sizing config; None: the model's. Anything else is a forced difference
    (execution is told to accept it), which the comparison then names."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    minute_wait_s: float = 5.0
    settle_timeout_s: float = 60.0
    stream_maxlen: int = 100_000


def run_paper_day(request: PaperRequest, replay: ReplayDays, start_services: StartServices) -> PaperResult:
    """Replay ``request.day`` through the services in their own namespace, in lockstep, then compare with
    the backtest on the same bars."""
    from scalper_trainer.evaluation.run import load_artifact

    day = request.day
    session = trading_day(day)
    if session is None:
        raise PaperError(f"{day} is not a trading day")
    artifact = load_artifact(request.artifact_dir, request.artifact_dir)
    config = artifact.env_config()
    paper_url = paper_database_url(request.database_url)
    prepare_database(paper_url, artifact.directory)
    namespace = PaperNamespace(
        request.redis_url, paper_url, f"{request.stream_prefix}paper:{request.run_id}:", artifact.symbols,
        request.risk or config.risk, config.premium, request.risk not in (None, config.risk),
        ReplayClock(session.pre_open - MINUTE), request.minute_wait_s, request.settle_timeout_s, request.stream_maxlen)
    client = redis.Redis.from_url(request.redis_url, decode_responses=False)
    stored, db = make_engine(request.database_url), make_engine(paper_url)
    try:
        with start_services(namespace) as services:
            wait_groups(client, namespace.stream_prefix, request.settle_timeout_s)
            producer = StreamProducer(client, streams.MD_BARS, maxlen=request.stream_maxlen,
                                      prefix=namespace.stream_prefix)
            day_bars = DayBars(stored, db, day, namespace.symbols)
            lockstep = LockstepReplay(client, namespace, services, day_bars, request.settle_timeout_s)
            began = time.monotonic()
            replayed = replay(stored, producer, [day], speed=request.speed, symbols=list(namespace.symbols),
                              clock=namespace.clock, on_minute=lockstep.after_minute,
                              before_minute=lockstep.before_minute)
            seconds = time.monotonic() - began
        if replayed.minutes == 0:
            raise PaperError(f"no stored bars of {day} for {', '.join(namespace.symbols)}")
        paper = live_trades(db, day, config.premium.contract_multiplier)
        latencies = order_latencies_ms(db, lockstep.published_at)
    finally:
        delete_namespace(client, namespace.stream_prefix)
        client.close()
        stored.dispose()
        db.dispose()
    backtest = backtest_trades(request.database_url, artifact.directory, day, namespace.symbols)
    return PaperResult(artifact.model_id, day, replayed.minutes, replayed.published, round(seconds, 2), paper,
                       backtest, latencies, namespace.stream_prefix, make_url(paper_url).database or "")
