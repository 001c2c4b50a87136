"""OCC option symbols (``SPY250701C00617000``): one home for building and parsing them.

Execution names the contracts it trades with them; option ingestion stores Polygon's ``O:``
tickers (the OCC symbol with an ``O:`` prefix) and evaluation looks real option bars up by them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from scalper_shared.core.enums import OptionRight
from scalper_shared.core.premium import normalise_symbol

OCC_ROOTS = {"SPX": "SPXW"}
"""Same-day SPX options are the PM-settled weeklys, root SPXW; other roots are the symbol itself."""
POLYGON_OPTION_PREFIX = "O:"
_OCC = re.compile(r"^(?P<root>[A-Z]{1,6})(?P<ymd>\d{6})(?P<cp>[CP])(?P<strike>\d{8})$")


def occ_symbol(symbol: str, expiry: date, right: OptionRight, strike: float) -> str:
    """``SPY250701C00617000``: root, YYMMDD expiry, C/P, strike x 1000 on 8 digits (no padding)."""
    root = OCC_ROOTS.get(normalise_symbol(symbol), normalise_symbol(symbol))
    letter = "C" if right is OptionRight.CALL else "P"
    return f"{root}{expiry:%y%m%d}{letter}{round(strike * 1000):08d}"


@dataclass(frozen=True, slots=True)
class OccParts:
    root: str
    expiry: date
    right: OptionRight
    strike: float


def parse_occ(option_symbol: str) -> OccParts:
    """The parts of an OCC symbol; a ``ValueError`` otherwise."""
    match = _OCC.match(option_symbol)
    if not match:
        raise ValueError(f"{option_symbol!r} is not an OCC option symbol such as SPY250701C00617000")
    ymd = match["ymd"]
    expiry = date(2000 + int(ymd[:2]), int(ymd[2:4]), int(ymd[4:]))
    right = OptionRight.CALL if match["cp"] == "C" else OptionRight.PUT
    return OccParts(match["root"], expiry, right, int(match["strike"]) / 1000)


def polygon_option_ticker(symbol: str, expiry: date, right: OptionRight, strike: float) -> str:
    """Polygon's ticker of an option: ``O:`` + the OCC symbol."""
    return POLYGON_OPTION_PREFIX + occ_symbol(symbol, expiry, right, strike)


def parse_polygon_option(ticker: str) -> OccParts:
    """The parts of a Polygon option ticker (``O:`` + OCC symbol); a ``ValueError`` otherwise."""
    if not ticker.startswith(POLYGON_OPTION_PREFIX):
        raise ValueError(f"{ticker!r} is not a Polygon option ticker such as O:SPY250701C00617000")
    return parse_occ(ticker.removeprefix(POLYGON_OPTION_PREFIX))
