"""Is the agent better than chance? A paired bootstrap and the probabilistic Sharpe ratio.

* :func:`bootstrap_mean_difference_ci`: resample the days (pairs: agent and baseline on the same
  day) with replacement and take the percentile interval of the mean daily P&L difference.
* :func:`probabilistic_sharpe_ratio`: Bailey & Lopez de Prado (2012), the probability that the true
  Sharpe ratio exceeds ``benchmark`` given the sample's length, skewness and kurtosis:
  ``PSR = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))`` with the per-period
  (not annualised) SR, the skewness g3 and the (non-excess) kurtosis g4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DEFAULT_RESAMPLES = 10_000


@dataclass(frozen=True, slots=True)
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float

    @property
    def includes_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


def bootstrap_mean_difference_ci(a: npt.ArrayLike, b: npt.ArrayLike, *, confidence: float = 0.95,
                                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Interval:
    """Percentile CI of ``mean(a - b)`` by resampling the paired days; identical for the same seed."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if diff.ndim != 1 or diff.size == 0:
        raise ValueError("need two equally long, non-empty daily series")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(n_resamples, diff.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(diff.mean()), float(low), float(high), confidence)


def sharpe_ratio(returns: npt.ArrayLike) -> float | None:
    """Per-period Sharpe ratio ``mean / std`` (sample std, ddof=1); None when undefined."""
    x = np.asarray(returns, dtype=np.float64)
    if x.size < 2:
        return None
    std = float(x.std(ddof=1))
    return float(x.mean()) / std if std > 0 else None


def probabilistic_sharpe_ratio(returns: npt.ArrayLike, benchmark: float = 0.0) -> float | None:
    """P(true per-period Sharpe > ``benchmark``); None for fewer than 3 periods or zero variance."""
    x = np.asarray(returns, dtype=np.float64)
    sr = sharpe_ratio(x)
    if sr is None or x.size < 3:
        return None
    centred = x - x.mean()
    sigma = math.sqrt(float((centred**2).mean()))
    skew = float((centred**3).mean()) / sigma**3
    kurtosis = float((centred**4).mean()) / sigma**4
    variance = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr**2
    if variance <= 0:
        return None
    z = (sr - benchmark) * math.sqrt(x.size - 1) / math.sqrt(variance)
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
