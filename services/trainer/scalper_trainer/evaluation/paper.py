"""Paper mode: one stored day through the live services, then compared with the offline backtest.

The paper/parity logic behind ``scalper paper`` and the demo's paper step (the CLI only calls
:func:`run_paper_day` and prints the typed :class:`PaperResult`). :func:`run_paper_day` replays the
day's bars (the ``replay`` callable: ``scalper_ingestion.replay.replay_days``, passed in by the
caller, so this package does not import another service's) to ``md.bars`` of a running stack, minute by minute in lockstep: after each minute's bars it waits until every consumer
of the chain (features and execution on ``md.bars``, the policy on ``features.vectors`` and
``positions.state``, execution on ``policy.decisions``) has nothing pending nor unread, so the next
minute's bars cannot overtake a decision (as they never do in the backtest); ``speed`` paces the
minutes on top of that. It then reads the trades execution made (``orders`` / ``fills``), the
bar-to-order latencies (bar envelope ``ts_init`` at publish -> order ``created_at``, when execution
recorded it before sending), and runs the evaluation engine on the same day with the same model
(:func:`backtest_trades`). In deterministic paper mode both trade lists are equal field by field.

Requirements on the stack: the policy serves ``model_id`` (promoted), ``PAPER_DETERMINISTIC``,
``EXECUTION_RISK_CONFIG`` equal to the model's saved risk config, ``POLICY_DECISION_MAX_AGE_S``
larger than the day's age (a replayed day is old), and the day later than anything the services saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import redis
from sqlalchemy import Engine, text

from scalper_shared.bus import StreamProducer
from scalper_shared.bus.groups import group_backlog as bus_group_backlog
from scalper_shared.clock import SystemClock
from scalper_shared.core.calendar import trading_day
from scalper_shared.core.lifecycle import ExitReason, Side
from scalper_shared.core.premium import normalise_symbol
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
"""(stream, consumer group of the registry) in the order work flows through the live services."""
MINUTE = timedelta(minutes=1)


class PaperError(RuntimeError):
    """The paper day could not run; the message says what."""


@dataclass(frozen=True, slots=True)
class PaperTrade:
    """One trade in the comparison's terms. Rows are minutes of the session (0 = its first bar)."""

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

    def latency_percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else None


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
            raise PaperError(f"group {busy[1]} on {busy[0]} still has work after {timeout_s:.0f}s: is the stack up?")
        time.sleep(poll_s)


class LockstepReplay:
    """The ``on_minute`` hook of ``replay_days``: remembers when each minute went out, then settles."""

    def __init__(self, client: redis.Redis, prefix: str, clock: SystemClock, timeout_s: float) -> None:
        self._client, self._prefix, self._clock, self._timeout_s = client, prefix, clock, timeout_s
        self.published_at: list[datetime] = []

    def __call__(self, bars: int) -> None:
        self.published_at.append(self._clock.now())
        wait_settled(self._client, self._prefix, self._timeout_s)

    def by_minute(self, minutes: Sequence[datetime]) -> dict[datetime, datetime]:
        """Publish time of each replayed minute (``minutes``: the day's bar starts, in replay order)."""
        return dict(zip(minutes, self.published_at, strict=False))


# --- what execution did ----------------------------------------------------------------------------

_FILLS = text("""
    SELECT o.symbol, o.trade_id, o.side, o.option_right, o.reason, o.created_at, o.decision_id,
           f.contracts, f.price, f.commission, f.filled_at
    FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id
    WHERE f.filled_at > :first AND f.filled_at <= :last
    ORDER BY f.filled_at, o.side, f.fill_id""")


def session_row(day: date, bar_close: datetime) -> int:
    """The session row of the bar closing at ``bar_close``."""
    session = trading_day(day)
    assert session is not None
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
    """Bar publish (minute ``m``'s bars) -> the order execution recorded for the decision on ``m``."""
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
        assert entry is not None
        exits.append(fill.price)
        pnl += fill.pnl
        sold += fill.contracts
        if sold >= entry.contracts:
            first = int(tape.first_row[entry.episode])
            symbol = normalise_symbol(tape.episodes.symbols[entry.episode])
            trades.append(PaperTrade(symbol, entry.side, entry.row - first, fill.row - first,
                                     fill.reason, entry.price, tuple(exits), entry.contracts, pnl))
            entry = None
    return sorted(trades, key=lambda t: (t.symbol, t.entry_row))


FIELDS = ("symbol", "side", "entry_row", "exit_row", "exit_reason", "entry_price", "contracts", "exit_prices", "pnl")
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
class PaperTarget:
    """Where the running stack is and what to replay."""

    redis_url: str
    database_url: str
    stream_prefix: str
    symbols: tuple[str, ...]
    artifact_dir: Path
    stream_maxlen: int = 100_000
    settle_timeout_s: float = 30.0


class ReplayOutcome(Protocol):
    @property
    def minutes(self) -> int: ...

    @property
    def published(self) -> int: ...


ReplayDays = Callable[..., ReplayOutcome]
"""``scalper_ingestion.replay.replay_days``: (engine, producer, days, *, speed, symbols, clock, on_minute)."""

_MINUTES = text("SELECT DISTINCT start FROM bars WHERE start >= :first AND start < :last AND symbol = ANY(:symbols) "
                "ORDER BY start")


def day_minutes(db: Engine, day: date, symbols: Sequence[str]) -> list[datetime]:
    """The bar starts of ``day``'s stored bars (pre-market to post-market), in replay order."""
    session = trading_day(day)
    if session is None:
        raise PaperError(f"{day} is not a trading day")
    with db.connect() as c:
        return list(c.execute(_MINUTES, {"first": session.pre_open, "last": session.post_close,
                                         "symbols": list(symbols)}).scalars())


def run_paper_day(target: PaperTarget, model_id: str, day: date, speed: float, replay: ReplayDays) -> PaperResult:
    """Replay ``day`` through the running services in lockstep, then compare with the backtest."""
    from scalper_shared.db import make_engine

    client = redis.Redis.from_url(target.redis_url, decode_responses=False)
    db = make_engine(target.database_url)
    clock = SystemClock()
    try:
        producer = StreamProducer(client, streams.MD_BARS, maxlen=target.stream_maxlen, prefix=target.stream_prefix)
        lockstep = LockstepReplay(client, target.stream_prefix, clock, target.settle_timeout_s)
        wait_settled(client, target.stream_prefix, target.settle_timeout_s)
        began = time.monotonic()
        replayed = replay(db, producer, [day], speed=speed, symbols=list(target.symbols), clock=clock,
                          on_minute=lockstep)
        seconds = time.monotonic() - began
        if replayed.minutes == 0:
            raise PaperError(f"no stored bars of {day} for {', '.join(target.symbols)}")
        paper = live_trades(db, day)
        latencies = order_latencies_ms(db, lockstep.by_minute(day_minutes(db, day, target.symbols)))
    finally:
        client.close()
        db.dispose()
    backtest = backtest_trades(target.database_url, target.artifact_dir, day, target.symbols)
    return PaperResult(model_id, day, replayed.minutes, replayed.published, round(seconds, 2), paper, backtest,
                       latencies)
