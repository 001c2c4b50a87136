"""Table definitions: typed ORM models whose ``__table__`` is the Core table the bulk writer uses.

Each table is created by an Alembic revision in ``migrations/versions``; a new table means a new
model here plus a new revision, never an edit of an applied revision.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Double, Integer, MetaData, Table, Text, func
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
    upsert changes the bar.
    """

    __tablename__ = "bars"
    __table_args__ = (
        CheckConstraint("high >= low", name="high_not_below_low"),
        CheckConstraint("open BETWEEN low AND high AND close BETWEEN low AND high", name="open_close_in_range"),
        CheckConstraint("volume >= 0", name="volume_not_negative"),
        CheckConstraint("trade_count >= 0", name="trade_count_not_negative"),
        CheckConstraint(f"session IN {SESSIONS!r}", name="session_known"),
    )

    symbol: Mapped[str] = mapped_column(Text, primary_key=True)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    open: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    close: Mapped[float] = mapped_column(Double)
    volume: Mapped[float | None] = mapped_column(Double)
    vwap: Mapped[float | None] = mapped_column(Double)
    trade_count: Mapped[int | None] = mapped_column(Integer)
    session: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


bars: Table = BarRow.__table__  # type: ignore[assignment]
