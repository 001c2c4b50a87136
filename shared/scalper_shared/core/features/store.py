"""The feature store the trainer reads: one uncompressed ``.npz`` per symbol-day, per spec hash.

Layout (written by ``scalper features build``)::

    <root>/<spec_hash[:16]>/spec.json             the canonical spec JSON (full hash inside)
    <root>/<spec_hash[:16]>/<SYMBOL>/<YYYY-MM-DD>.npz

``SYMBOL`` is the ticker with ``:`` replaced by ``_`` (``I:SPX`` -> ``I_SPX``). Each file holds the
session's gap-filled minute grid (see ``sessions.py``), one row per minute, oldest first:

- ``minutes`` int64: bar start, epoch ms UTC
- ``values`` float64 [n, N_MARKET]: the market features in spec order
- ``close``, ``high``, ``low`` float64: the (gap-filled) bar prices
- ``real`` bool: the minute had a bar
- ``minutes_to_close`` int32: whole minutes from the bar's end to the session close
- ``spec_hash`` 0-d unicode array: the full hash the values were computed under

Files are written atomically (temporary file + rename) and read with ``numpy.load`` (no pickle).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from scalper_shared.core.arrays import FloatArray, IntArray
from scalper_shared.core.features.spec import FEATURE_SPEC, FeatureSpec, canonical_json

HASH_DIR_CHARS = 16


@dataclass(frozen=True, slots=True)
class FeatureDay:
    """One symbol-session of materialised features (see the module docstring for the arrays)."""

    symbol: str
    day: date
    spec_hash: str
    minutes: IntArray
    values: FloatArray
    close: FloatArray
    high: FloatArray
    low: FloatArray
    real: npt.NDArray[np.bool_]
    minutes_to_close: npt.NDArray[np.int32]
    unavailable: tuple[str, ...] = ()
    """Features of every row of the day computed without their inputs (``availability``: an equity
    day without volume); older files without the array read as ()."""

    def __len__(self) -> int:
        return len(self.minutes)


def spec_dir(root: Path, spec_hash: str = FEATURE_SPEC.spec_hash) -> Path:
    return Path(root) / spec_hash[:HASH_DIR_CHARS]


def day_path(root: Path, symbol: str, day: date, spec_hash: str = FEATURE_SPEC.spec_hash) -> Path:
    return spec_dir(root, spec_hash) / symbol.replace(":", "_") / f"{day.isoformat()}.npz"


def write_spec(root: Path, spec: FeatureSpec = FEATURE_SPEC) -> Path:
    """Write ``spec.json`` (canonical spec plus its full hash) beside the spec's day files."""
    path = spec_dir(root, spec.spec_hash) / "spec.json"
    body = {"spec_hash": spec.spec_hash, "spec": json.loads(canonical_json(spec))}
    _atomic_write(path, json.dumps(body, indent=1).encode())
    return path


def write_feature_day(root: Path, feature_day: FeatureDay) -> Path:
    """Store one symbol-day (replacing an older file of the same spec); returns its path."""
    path = day_path(root, feature_day.symbol, feature_day.day, feature_day.spec_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, minutes=feature_day.minutes, values=feature_day.values, close=feature_day.close,
                     high=feature_day.high, low=feature_day.low, real=feature_day.real,
                     minutes_to_close=feature_day.minutes_to_close, spec_hash=np.array(feature_day.spec_hash),
                     unavailable=np.array(feature_day.unavailable, dtype=np.str_))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_feature_day(path: Path, symbol: str, day: date) -> FeatureDay:
    with np.load(path, allow_pickle=False) as data:
        return FeatureDay(symbol=symbol, day=day, spec_hash=str(data["spec_hash"]), minutes=data["minutes"],
                          values=data["values"], close=data["close"], high=data["high"], low=data["low"],
                          real=data["real"], minutes_to_close=data["minutes_to_close"],
                          unavailable=tuple(str(x) for x in data["unavailable"]) if "unavailable" in data else ())


def load_feature_days(root: Path, symbols: list[str] | tuple[str, ...], start: date, end: date,
                      spec_hash: str = FEATURE_SPEC.spec_hash) -> list[FeatureDay]:
    """Every stored symbol-day with ``start <= day <= end``, ordered by day then by ``symbols``.

    Days without a file (holidays, days not built) are skipped; a file whose stored hash is not
    ``spec_hash`` raises ``ValueError`` (features of another spec must never mix in).
    """
    out = []
    day = start
    while day <= end:
        for symbol in symbols:
            path = day_path(root, symbol, day, spec_hash)
            if path.is_file():
                feature_day = read_feature_day(path, symbol, day)
                if feature_day.spec_hash != spec_hash:
                    raise ValueError(f"{path} holds spec {feature_day.spec_hash}, expected {spec_hash}")
                out.append(feature_day)
        day += timedelta(days=1)
    return out


def stored_days(root: Path, symbol: str, spec_hash: str = FEATURE_SPEC.spec_hash) -> list[date]:
    """The days stored for ``symbol`` under ``spec_hash``, sorted."""
    folder = spec_dir(root, spec_hash) / symbol.replace(":", "_")
    return sorted(date.fromisoformat(p.stem) for p in folder.glob("*.npz")) if folder.is_dir() else []


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
