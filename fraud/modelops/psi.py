"""Population stability index. No Django import.

PSI = Σ (actual% − expected%) · ln(actual% / expected%) over the reference bins; shares are
floored at 1e-4 so an empty bin does not make it infinite. Rule of thumb: < 0.1 stable,
0.1–0.25 moderate shift, > 0.25 large shift."""

from __future__ import annotations

from typing import Any

import numpy as np

FLOOR = 1e-4


def reference_bins(values: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Inner edges at the reference's quantiles (duplicates merged, so a feature that is mostly
    one value gets fewer bins) and the reference share in each bin."""
    values = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])) if len(values) else np.array([])
    return {"edges": edges.tolist(), "shares": shares(values, edges.tolist())}


def shares(values: np.ndarray, edges: list[float]) -> list[float]:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return [0.0] * (len(edges) + 1)
    # Bin i holds edges[i-1] < v <= edges[i]: a value equal to an edge (a constant or binary
    # feature) stays in the lower bin, so 0s and 1s of a 0/1 feature never share a bin.
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="left"), minlength=len(edges) + 1)
    result: list[float] = (counts / len(values)).tolist()
    return result


def psi(expected: list[float], actual: list[float]) -> float:
    e = np.maximum(np.asarray(expected, dtype=np.float64), FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))
