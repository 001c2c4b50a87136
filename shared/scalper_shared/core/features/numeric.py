"""Array arithmetic that the batch builder shares bit for bit with the incremental engine."""

from __future__ import annotations

import math

import numpy as np

from scalper_shared.core.arrays import FloatArray


def _log(x: float) -> float:
    return math.log(x) if x > 0.0 else float(np.log(x))  # NaN, 0 and negatives as numpy gives them


def libm_log(values: FloatArray) -> FloatArray:
    """``np.log`` computed element by element with ``math.log``, the function the incremental engine
    calls. numpy's SIMD log (AVX-512 machines) can differ from it in the last bit, and then features
    built for training would not equal the ones streamed live."""
    flat = np.fromiter(map(_log, values.ravel().tolist()), dtype=np.float64, count=values.size)
    return flat.reshape(values.shape)
