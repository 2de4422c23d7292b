"""The compiled (numba) tree-walking kernels and the preprocessing steps they replace."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numba
import numpy as np
from numpy.typing import NDArray

TOLERANCE = 1e-9
"""Maximum absolute difference allowed between this evaluator and scikit-learn."""

SERIAL_ROWS = 64
"""Batches smaller than this run the serial kernel in the caller's thread (no thread start-up,
no parallel-call lock); larger ones the parallel kernel when ``n_threads > 1`` (measured: two
threads win from ~32 rows of 200 trees, 8 rows lose ~0.03 ms to the start-up)."""

Kind = Literal["isolation_forest", "random_forest"]

SUPPORTED_ESTIMATORS: tuple[str, ...] = (
    "IsolationForest",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
)

_F32_NEG_INF = np.float32(-np.inf)


class UnsupportedModelError(TypeError):
    """The object is not a pipeline this evaluator reproduces exactly."""


class MismatchError(AssertionError):
    """The compiled scorer and scikit-learn disagree by more than the tolerance."""


# --------------------------------------------------------------------------------------------
# Preprocessing steps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Imputer:
    """Numeric SimpleImputer(missing_values=nan): NaN -> per-column statistic."""

    statistics: NDArray[np.float64]

    def apply(self, x: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
        missing = np.isnan(x)
        if not missing.any():
            return x
        return np.where(missing, self.statistics.astype(x.dtype), x)


@dataclass(frozen=True)
class _Scaler:
    """StandardScaler.transform: ``X -= mean; X /= scale`` on a copy, in the input's dtype."""

    mean: NDArray[np.float64] | None
    scale: NDArray[np.float64] | None

    def apply(self, x: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
        if np.isinf(x).any():
            raise ValueError("Input X contains infinity or a value too large for the scaler.")
        out = np.array(x, dtype=x.dtype, copy=True)
        if self.mean is not None:
            out -= self.mean.astype(out.dtype)
        if self.scale is not None:
            out /= self.scale.astype(out.dtype)
        return out


_Step = _Imputer | _Scaler


def compile_step(step: Any) -> _Step | None:
    name = type(step).__name__
    if step is None or step == "passthrough":
        return None
    if hasattr(step, "fit_resample"):  # imblearn sampler: only acts during fit
        return None
    if name == "StandardScaler":
        if not hasattr(step, "scale_"):
            raise UnsupportedModelError("StandardScaler is not fitted")
        mean = None if not step.with_mean else np.asarray(step.mean_, dtype=np.float64)
        scale = None if not step.with_std else np.asarray(step.scale_, dtype=np.float64)
        return _Scaler(mean, scale)
    if name == "SimpleImputer":
        stats = np.asarray(getattr(step, "statistics_", None), dtype=np.float64)
        missing = step.missing_values
        if not (isinstance(missing, float) and math.isnan(missing)):
            raise UnsupportedModelError("SimpleImputer: only missing_values=np.nan is supported")
        if step.add_indicator or stats.ndim != 1 or not np.isfinite(stats).all():
            raise UnsupportedModelError(
                "SimpleImputer: indicators or all-missing (dropped) features are not supported"
            )
        return _Imputer(stats)
    raise UnsupportedModelError(f"unsupported pipeline step {name}")


# --------------------------------------------------------------------------------------------
# The kernels
# --------------------------------------------------------------------------------------------
# A node is four uint32 in ``nodes``: feature, threshold (float32 bits; ``thresholds`` is the
# same memory seen as float32), left child, right child; one cache line holds four nodes.
# Indices are uint64 (numba adds a negative-index check to every signed index); the constants
# keep the arithmetic in uint64 (uint64 with a plain int literal would give float64).
# ``missing_left`` is None when the batch has no NaN: numba compiles a second version of each
# kernel without the NaN test (the test costs ~30 % of a step).

_U64 = np.uint64
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_THREE = np.uint64(3)
_FOUR = np.uint64(4)


@numba.njit(cache=True, nogil=True, inline="always")
def _step(row: Any, node: Any, nodes: Any, thresholds: Any, missing_left: Any) -> Any:
    """One level down: both children are loaded with the comparison, which only selects."""
    base = _FOUR * node
    left = nodes[base + _TWO]
    right = nodes[base + _THREE]
    value = row[nodes[base]]
    go_left = value <= thresholds[base + _ONE]
    if missing_left is not None:
        go_left = go_left | ((value != value) & missing_left[node])
    return _U64(left) if go_left else _U64(right)


@numba.njit(cache=True, nogil=True)
def _walk_block(
    x: Any, start: Any, stop: Any, roots: Any, levels: Any, tails: Any, nodes: Any,
    thresholds: Any, missing_left: Any, values: Any, out: Any,
) -> None:  # fmt: skip
    """Add every tree's leaf values to ``out[start:stop]``, tree after tree (tree order)."""
    width = values.shape[1]
    leaf = np.empty(stop - start, dtype=np.uint64)
    active = np.empty(stop - start, dtype=np.int64)
    for t in range(roots.shape[0]):
        root = roots[t]
        fixed = levels[t]
        i = start
        while i + 8 <= stop:  # eight rows in step through the fixed levels
            r0, r1, r2, r3 = x[i], x[i + 1], x[i + 2], x[i + 3]
            r4, r5, r6, r7 = x[i + 4], x[i + 5], x[i + 6], x[i + 7]
            n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = root
            for _ in range(fixed):
                n0 = _step(r0, n0, nodes, thresholds, missing_left)
                n1 = _step(r1, n1, nodes, thresholds, missing_left)
                n2 = _step(r2, n2, nodes, thresholds, missing_left)
                n3 = _step(r3, n3, nodes, thresholds, missing_left)
                n4 = _step(r4, n4, nodes, thresholds, missing_left)
                n5 = _step(r5, n5, nodes, thresholds, missing_left)
                n6 = _step(r6, n6, nodes, thresholds, missing_left)
                n7 = _step(r7, n7, nodes, thresholds, missing_left)
            j = i - start
            leaf[j], leaf[j + 1], leaf[j + 2], leaf[j + 3] = n0, n1, n2, n3
            leaf[j + 4], leaf[j + 5], leaf[j + 6], leaf[j + 7] = n4, n5, n6, n7
            i += 8
        while i < stop:  # the last < 8 rows (a single row: only this loop)
            row = x[i]
            node = root
            for _ in range(fixed):
                node = _step(row, node, nodes, thresholds, missing_left)
            leaf[i - start] = node
            i += 1
        if tails[t]:  # leaves below the fixed levels: level by level, the rows not yet at one
            n_active = stop - start
            for j in range(n_active):
                active[j] = j
            while n_active > 0:
                kept = 0
                for a in range(n_active):
                    j = active[a]
                    node = leaf[j]
                    child = _step(x[start + j], node, nodes, thresholds, missing_left)
                    leaf[j] = child
                    active[kept] = j
                    kept += child != node  # a leaf points to itself: the row is done
                n_active = kept
        for i in range(start, stop):
            node = leaf[i - start]
            for c in range(width):
                out[i, c] += values[node, c]


@numba.njit(cache=True, nogil=True)
def forest_sum_serial(
    x: Any, block_rows: Any, roots: Any, levels: Any, tails: Any, nodes: Any, thresholds: Any,
    missing_left: Any, values: Any, out: Any,
) -> None:  # fmt: skip
    """``out[i] += sum over trees of the leaf values of row i``, block after block."""
    n = x.shape[0]
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        _walk_block(
            x, start, stop, roots, levels, tails, nodes, thresholds, missing_left, values, out
        )


@numba.njit(cache=True, nogil=True, parallel=True)
def forest_sum_parallel(
    x: Any, block_rows: Any, roots: Any, levels: Any, tails: Any, nodes: Any, thresholds: Any,
    missing_left: Any, values: Any, out: Any,
) -> None:  # fmt: skip
    """As :func:`forest_sum_serial`, the row blocks shared among numba's threads."""
    n = x.shape[0]
    n_blocks = (n + block_rows - 1) // block_rows
    for b in numba.prange(n_blocks):
        start = b * block_rows
        stop = min(n, start + block_rows)
        _walk_block(
            x, start, stop, roots, levels, tails, nodes, thresholds, missing_left, values, out
        )


_PARALLEL_LOCK = threading.Lock()


def max_threads() -> int:
    return max(1, int(getattr(numba.config, "NUMBA_NUM_THREADS", 1)))
