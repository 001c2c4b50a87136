"""Table definitions: typed ORM models whose ``__table__`` is the Core table the bulk writer uses.

Each table is created by an Alembic revision in ``migrations/versions``; a new table means a new
model here plus a new revision, never an edit of an applied revision.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SESSIONS = ("pre", "regular", "post")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class BarRow(Base):
    """One 1-minute bar of one symbol; ``start`` is the bar's opening minute (UTC).

    ``volume``, ``vwap`` and ``trade_count`` are NULL when the source has none (index bars such as
    SPX have no volume: NULL, never 0). ``ingested_at`` is set once; ``updated_at`` moves whenever an
    upsert changes the bar. ``symbol`` sorts bytewise (collation "C") on every server.
    """

    __tablename__ = "bars"
    __table_args__ = (
        CheckConstraint("high >= low", name="high_not_below_low"),
        CheckConstraint("open BETWEEN low AND high AND close BETWEEN low AND high", name="open_close_in_range"),
        CheckConstraint("volume >= 0", name="volume_not_negative"),
        CheckConstraint("trade_count >= 0", name="trade_count_not_negative"),
        CheckConstraint(f"session IN {SESSIONS!r}", name="session_known"),
    )

    symbol: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    open: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    close: Mapped[float] = mapped_column(Double)
    volume: Mapped[float | None] = mapped_column(Double)
    vwap: Mapped[float | None] = mapped_column(Double)
    trade_count: Mapped[int | None] = mapped_column(BigInteger)
    session: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


bars: Table = BarRow.__table__  # type: ignore[assignment]


class OptionBarRow(Base):
    """One 1-minute aggregate of one option contract (Polygon ``O:`` ticker); ``start`` opens the minute.

    ``underlying`` is the bars-table symbol the contract was chosen for (``SPY``, ``I:SPX``); the
    contract's expiry, right and strike come from its OCC symbol. Written by ``scalper ingest options``.
    """

    __tablename__ = "option_bars"
    __table_args__ = (
        CheckConstraint("high >= low", name="high_not_below_low"),
        CheckConstraint("open BETWEEN low AND high AND close BETWEEN low AND high", name="open_close_in_range"),
        CheckConstraint("volume >= 0", name="volume_not_negative"),
        CheckConstraint("option_right IN ('call', 'put')", name="right_known"),
        CheckConstraint("strike > 0", name="strike_positive"),
        Index("ix_option_bars_underlying_start", "underlying", "start"),
    )

    ticker: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    underlying: Mapped[str] = mapped_column(Text(collation="C"))
    expiry: Mapped[date] = mapped_column(Date)
    option_right: Mapped[str] = mapped_column(Text)
    strike: Mapped[float] = mapped_column(Double)
    open: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    close: Mapped[float] = mapped_column(Double)
    volume: Mapped[float | None] = mapped_column(Double)
    vwap: Mapped[float | None] = mapped_column(Double)
    trade_count: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(Text)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


option_bars: Table = OptionBarRow.__table__  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------
# Execution service (revision 'exec0001'): orders, fills, positions, trades, day P&L, risk events,
# and the paper broker's own book (the simulated venue, kept apart from what execution believes).

ORDER_STATUSES = ("submitted", "accepted", "partially_filled", "filled", "canceled", "rejected")


class OrderRow(Base):
    """One order, written (status ``submitted``) before it is sent; ``client_order_id`` is unique."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(f"status IN {ORDER_STATUSES!r}", name="status_known"),
        CheckConstraint("side IN ('buy', 'sell')", name="side_known"),
        CheckConstraint("contracts > 0 AND filled_contracts BETWEEN 0 AND contracts", name="contracts_valid"),
    )

    client_order_id: Mapped[str] = mapped_column(Text, primary_key=True)
    broker_order_id: Mapped[str | None] = mapped_column(Text)
    trade_id: Mapped[str] = mapped_column(Text, index=True)
    symbol: Mapped[str] = mapped_column(Text)
    option_symbol: Mapped[str] = mapped_column(Text)
    option_right: Mapped[str] = mapped_column(Text)
    side: Mapped[str] = mapped_column(Text)
    contracts: Mapped[int] = mapped_column(Integer)
    filled_contracts: Mapped[int] = mapped_column(Integer, server_default="0")
    avg_fill_price: Mapped[float | None] = mapped_column(Double)
    status: Mapped[str] = mapped_column(Text, index=True)
    reason: Mapped[str] = mapped_column(Text)
    decision_id: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FillRow(Base):
    """One execution of an order; ``fill_id`` (the broker's) is unique, so a replayed fill adds nothing."""

    __tablename__ = "fills"

    fill_id: Mapped[str] = mapped_column(Text, primary_key=True)
    client_order_id: Mapped[str] = mapped_column(Text, ForeignKey("orders.client_order_id"), index=True)
    contracts: Mapped[int] = mapped_column(Integer)
    price: Mapped[float] = mapped_column(Double)
    commission: Mapped[float] = mapped_column(Double)
    filled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TradeRow(Base):
    """One position from entry to flat (``trade_id`` = the entry's client order id) and its net P&L."""

    __tablename__ = "trades"

    trade_id: Mapped[str] = mapped_column(Text, primary_key=True)
    symbol: Mapped[str] = mapped_column(Text)
    option_symbol: Mapped[str] = mapped_column(Text)
    option_right: Mapped[str] = mapped_column(Text)
    contracts_open: Mapped[int] = mapped_column(Integer)
    contracts_bought: Mapped[int] = mapped_column(Integer)
    avg_premium: Mapped[float] = mapped_column(Double)
    mark_bid: Mapped[float] = mapped_column(Double)
    tiers_hit: Mapped[int] = mapped_column(Integer)
    realised_pnl: Mapped[float] = mapped_column(Double)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    exit_reason: Mapped[str | None] = mapped_column(Text)


class DailyPnlRow(Base):
    __tablename__ = "daily_pnl"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    trades: Mapped[int] = mapped_column(Integer)
    realised_pnl: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RiskEventRow(Base):
    """Every denial (``kind='denied'``, keyed by its client order id) and trading-state change."""

    __tablename__ = "risk_events"

    event_key: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    symbol: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, server_default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class RiskStateRow(Base):
    """The trading state (one row, ``id = 1``)."""

    __tablename__ = "risk_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trading_state: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PaperOrderRow(Base):
    """The paper broker's book: what the simulated venue accepted, with the quote it fills at."""

    __tablename__ = "paper_orders"

    client_order_id: Mapped[str] = mapped_column(Text, primary_key=True)
    broker_order_id: Mapped[str] = mapped_column(Text, unique=True)
    option_symbol: Mapped[str] = mapped_column(Text)
    side: Mapped[str] = mapped_column(Text)
    contracts: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text)
    fill_price: Mapped[float] = mapped_column(Double)
    quote_as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fill_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PaperFillRow(Base):
    __tablename__ = "paper_fills"

    fill_id: Mapped[str] = mapped_column(Text, primary_key=True)
    client_order_id: Mapped[str] = mapped_column(Text, ForeignKey("paper_orders.client_order_id"), index=True)
    contracts: Mapped[int] = mapped_column(Integer)
    price: Mapped[float] = mapped_column(Double)
    commission: Mapped[float] = mapped_column(Double)
    filled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


orders: Table = OrderRow.__table__  # type: ignore[assignment]
fills: Table = FillRow.__table__  # type: ignore[assignment]
trades: Table = TradeRow.__table__  # type: ignore[assignment]
daily_pnl: Table = DailyPnlRow.__table__  # type: ignore[assignment]
risk_events: Table = RiskEventRow.__table__  # type: ignore[assignment]
risk_state: Table = RiskStateRow.__table__  # type: ignore[assignment]
paper_orders: Table = PaperOrderRow.__table__  # type: ignore[assignment]
paper_fills: Table = PaperFillRow.__table__  # type: ignore[assignment]


class ModelRow(Base):
    """One trained model: its artifact directory, config, feature-spec hash, data window and metrics.

    Exactly one row per training job (``job_id`` is unique), however often the job was retried.
    At most one row is ``promoted`` (a partial unique index); the policy API serves that one.
    """

    __tablename__ = "models"
    __table_args__ = (
        CheckConstraint("status IN ('ready', 'retired')", name="status_known"),
        Index("uq_models_one_promoted", "promoted", unique=True, postgresql_where=text("promoted")),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    job_id: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    spec_hash: Mapped[str] = mapped_column(Text)
    train_from: Mapped[date] = mapped_column(Date)
    train_to: Mapped[date] = mapped_column(Date)
    validation_from: Mapped[date] = mapped_column(Date)
    validation_to: Mapped[date] = mapped_column(Date)
    total_timesteps: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB)
    artifact_path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="ready")
    promoted: Mapped[bool] = mapped_column(Boolean, server_default="false")
    name: Mapped[str | None] = mapped_column(Text, index=True)
    """A model's name (revision 'study0001'): a study registers its best model under the study's name."""


class TrainingDiagnosticRow(Base):
    """Diagnostics of one training job at one checkpoint, on its fixed validation set (revision
    'train0002'): the headline figures as columns, the whole ``Diagnostics`` record in ``details``."""

    __tablename__ = "training_diagnostics"

    job_id: Mapped[str] = mapped_column(Text, primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updates: Mapped[int] = mapped_column(Integer)
    approx_kl: Mapped[float | None] = mapped_column(Double)
    hold_share: Mapped[float | None] = mapped_column(Double)
    buy_share: Mapped[float | None] = mapped_column(Double)
    entropy: Mapped[float | None] = mapped_column(Double)
    setup_buy_rate: Mapped[float | None] = mapped_column(Double)
    nonsetup_buy_rate: Mapped[float | None] = mapped_column(Double)
    trades_per_account_day: Mapped[float | None] = mapped_column(Double)
    pnl_per_account_day: Mapped[float | None] = mapped_column(Double)
    collapse_warning: Mapped[bool] = mapped_column(Boolean, server_default="false")
    not_learning_warning: Mapped[bool] = mapped_column(Boolean, server_default="false")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)


models: Table = ModelRow.__table__  # type: ignore[assignment]
training_diagnostics: Table = TrainingDiagnosticRow.__table__  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------
# Feature service (revision 'feat0001'): the market features of every symbol-minute.


class FeatureRowRecord(Base):
    """The market features of one symbol-minute under one FeatureSpec (``spec_hash``).

    ``values`` holds the spec's market features in spec order (one ``double precision[]`` rather than
    a column per feature, so a spec change needs no migration); ``real`` is False on a gap-filled
    minute. ``published`` is False between the commit and the publication on ``features.vectors``:
    the service republishes such rows after a crash. ``minute`` is the bar's opening minute (UTC).
    """

    __tablename__ = "features"
    __table_args__ = (
        Index("ix_features_unpublished", "spec_hash", "minute", postgresql_where=text("NOT published")),
    )

    symbol: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    spec_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    values: Mapped[list[float]] = mapped_column(ARRAY(Double))
    real: Mapped[bool] = mapped_column(Boolean)
    published: Mapped[bool] = mapped_column(Boolean, server_default="false")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    unavailable: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    """Features of the row computed without their inputs (``core.features.availability``), spec order."""


features: Table = FeatureRowRecord.__table__  # type: ignore[assignment]


class FeatureOwnerRow(Base):
    """The fence of the feature service's lease (revision 'feat0002'): the token of the newest owner
    of a symbol universe (its consumer group). An owner writes features only while the stored token
    is its own (checked in the writing transaction), so a stale owner can never overwrite a newer one."""

    __tablename__ = "feature_owners"

    universe: Mapped[str] = mapped_column(Text, primary_key=True)
    token: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


feature_owners: Table = FeatureOwnerRow.__table__  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------
# Ingestion (revision 'sec0001'): the outbox of bars stored but not yet published to md.bars.


class BarOutboxRow(Base):
    """A stored bar version not yet confirmed on ``md.bars``: written in the transaction that stores
    the bar, deleted after the publication (only if it still names the version published). A re-run of
    an import and the ingestion service's publisher drain what is left (at-least-once)."""

    __tablename__ = "bars_outbox"

    symbol: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    envelope_id: Mapped[str] = mapped_column(Text)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# ---------------------------------------------------------------------------------------------
# Ingestion (revision 'ingest0001'): bars that failed validation, kept with the rule they broke.


class QuarantinedBarRow(Base):
    """A bar that failed validation, as received, with the first rule it broke (``reason``).

    ``key`` is a digest of the received values and the reason, so importing the same bad row again
    adds nothing. Any value may be NULL (an unparsable time or price is stored as NULL).
    """

    __tablename__ = "bars_quarantine"
    __table_args__ = (Index("ix_bars_quarantine_symbol_start", "symbol", "start"),)

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    symbol: Mapped[str | None] = mapped_column(Text(collation="C"))
    start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    open: Mapped[float | None] = mapped_column(Double)
    high: Mapped[float | None] = mapped_column(Double)
    low: Mapped[float | None] = mapped_column(Double)
    close: Mapped[float | None] = mapped_column(Double)
    volume: Mapped[float | None] = mapped_column(Double)
    vwap: Mapped[float | None] = mapped_column(Double)
    trade_count: Mapped[int | None] = mapped_column(BigInteger)
    session: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, index=True)
    quarantined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


bars_quarantine: Table = QuarantinedBarRow.__table__  # type: ignore[assignment]
bars_outbox: Table = BarOutboxRow.__table__  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------
# Offline evaluation (revision 'eval0001'): one row per evaluation of a model over a date window.


class EvaluationRow(Base):
    """One evaluation: queued by the policy API, run by the trainer worker (queue ``evaluation``).

    ``progress`` (0..1) and ``stage`` move while it runs; a finished row has the whole
    ``metrics.json`` in ``metrics``, its one-line ``summary`` and the ``report_dir`` holding
    ``report.html`` and the plots; a failed row has ``error``.
    """

    __tablename__ = "evaluations"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'finished', 'failed')", name="status_known"),
        CheckConstraint("progress BETWEEN 0 AND 1", name="progress_fraction"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    model_id: Mapped[str] = mapped_column(Text, index=True)
    status: Mapped[str] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    progress: Mapped[float] = mapped_column(Double, server_default="0")
    stage: Mapped[str] = mapped_column(Text, server_default="")
    summary: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    report_dir: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


evaluations: Table = EvaluationRow.__table__  # type: ignore[assignment]
