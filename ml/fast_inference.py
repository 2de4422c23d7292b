"""Compiled (numba) evaluator for the project's fitted tree pipelines.

``compile_pipeline(pipeline)`` turns a fitted scikit-learn pipeline into a :class:`FastScorer`
that gives the same numbers as the pipeline itself, without scikit-learn's per-call overhead
(input validation, one joblib task per tree, per-tree temporary arrays) and with a faster
tree walk:

* ``StandardScaler`` (optionally after a numeric ``SimpleImputer``) followed by
  ``IsolationForest``: ``score_samples``, ``decision_function``, ``predict``;
* ``StandardScaler`` followed by ``RandomForestClassifier`` (or ``ExtraTreesClassifier``):
  ``predict_proba``, ``predict``.

Samplers of an imbalanced-learn pipeline (``fit_resample``) are skipped, as they are at predict
time; a bare forest (no pipeline) works too. Anything else raises
:class:`UnsupportedModelError`, so callers can fall back to the pipeline.

How it works
------------
All trees are flattened into one node table: per node four ``uint32`` (feature as a global
column index, threshold as ``float32`` bits (see below), left child, right child: four nodes per
cache line), plus ``missing_go_to_left`` and one ``float64`` row of values (isolation forest:
the node's path-length term; classifier: the node's class fractions). A leaf points to itself
and sends every input left, so walking on from a leaf is harmless. Preprocessing (imputer,
scaler) stays in NumPy; the walk is a ``@numba.njit`` kernel (``cache=True``: compiled once per
machine, then loaded from ``__pycache__``; ``nogil``):

* rows are taken in blocks (:data:`BLOCK_BYTES` of features, 4,096 rows of 16 features); each
  block goes through every tree, in tree order;
* in a tree, eight rows go down in step, branch-free (both children are loaded and the
  comparison selects one), so eight independent chains of loads overlap instead of one walk
  waiting on each load and on mispredicted branches;
* every row goes down a fixed number of levels per tree: the tree's depth, or fewer when the
  training samples' leaf depths say that is cheaper (see :data:`TAIL_STEP_COST`); the rows of
  such a deep tree then go on level by level, each level only with the rows not yet at a leaf;
* the leaf values are added to each row's total one tree at a time, in tree order;
* a batch without NaN runs a second compiled version of the kernel without the NaN test (the
  test costs ~30 % of a step).

Batches of at least :data:`SERIAL_ROWS` rows run the ``parallel=True`` version of the kernel
(``prange`` over equal row blocks) on ``n_threads`` numba threads: ``numba.set_num_threads``
around the call (a per-thread setting, restored afterwards), at most
``numba.config.NUMBA_NUM_THREADS`` (numba's pool, the CPU count unless the environment variable
says otherwise). One parallel call runs at a time in the process: a caller that finds another
one running (e.g. the reason-code threads of ``ml.scoring``) runs the serial kernel in its own
thread instead, which releases the GIL too (numba's fallback "workqueue" threading layer, used
when neither TBB nor OpenMP is installed, must not be entered by two threads at once). Smaller
batches and single rows run the serial kernel in the caller's thread (no thread start-up).

:func:`compile_pipeline` ends with a warm-up on dummy rows, so compilation (first use on a
machine: ~10 s for the four kernel versions, serial/parallel x with/without NaN) or loading the
cached machine code (~0.4 s in a new process, ~0 afterwards) happens there and not in the first
real call; ``describe()['jit_seconds']`` reports it.

Speed (measured on the 2-core shared machine, 40,000 rows x 16 features, best of 5; ``ml.bench``
measures it on the gold table): IsolationForest(200 trees, max_samples=256) 3.6x scikit-learn's
rows/s on one thread, 4.8x on two; RandomForest(200 trees, max_depth=10) 2.5x and 4.2x (one
thread's figures vary by ~30 % with the machine's load; two threads need the second core free).
A single row costs p50 0.04-0.09 ms, p99 0.09-0.18 ms instead of scikit-learn's ~20-40 ms (its
per-call validation and one joblib task per tree).

Exactness (mirrors scikit-learn 1.9)
------------------------------------
* Preprocessing repeats scikit-learn's operations on the same dtype (``X -= mean; X /= scale``),
  then casts to float32 as the forests do, so the values the trees see are bit-identical.
* Trees compare ``float32(x) <= threshold`` (scikit-learn casts inputs to float32, thresholds are
  float64). For a float32 ``x`` that is equivalent to ``x <= round_down_to_float32(threshold)``,
  so thresholds are stored rounded *down* to float32 and compared in float32: exact, not an
  approximation. ``NaN`` follows each node's ``missing_go_to_left`` as in scikit-learn; ``inf``
  compares as in scikit-learn.
* Isolation forest: per tree ``decision_path_length(leaf) + average_path_length(leaf) - 1.0``
  (the per-node arrays scikit-learn itself uses, added in the same order), with the feature
  subset of each tree (``estimators_features_``, ``max_features < 1``) mapped to global columns;
  summed over trees in tree order starting from 0.0, then
  ``2 ** (-sum / (n_trees * c(max_samples)))`` in NumPy, ``decision_function = score_samples
  - offset_``.
* Random forest: per-tree leaf class fractions (``tree_.value``, normalised by scikit-learn)
  summed in tree order from 0.0, divided by the number of trees.

No fast-math: every float operation is the one scikit-learn does, in the same order, so the
results are bit-identical to scikit-learn with ``n_jobs=1`` (its default for these calls);
:data:`TOLERANCE` (1e-9 absolute) only leaves room for a forest predicted with ``n_jobs > 1``
(threads add trees in completion order, which changes the last bits). The number of threads of
this evaluator does not change any result (a row is always summed by one thread, in tree order).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numba
import numpy as np
from numpy.typing import NDArray

TOLERANCE = 1e-9
"""Maximum absolute difference allowed between this evaluator and scikit-learn."""

BLOCK_BYTES = 256 * 1024
"""Rows are taken through every tree, tree after tree, in blocks of this many bytes of float32
features (4,096 rows of 16 features): large enough that the node arrays are read once per block
rather than once per few rows, small enough to stay in the L2 cache. Measured: 256-row blocks
ran RandomForest(200 trees, max_depth=10, 2.4 MB of nodes) at ~0.5x and fully grown trees at
~0.4x the speed of 4,096-row blocks; an isolation forest (0.4 MB) runs the same at 512 rows and
up. The parallel kernel splits a batch into a multiple of ``n_threads`` blocks of at most this
size."""

SERIAL_ROWS = 64
"""Batches smaller than this run the serial kernel in the caller's thread (no thread start-up,
no parallel-call lock); larger ones the parallel kernel when ``n_threads > 1`` (measured: two
threads win from ~32 rows of 200 trees, 8 rows lose ~0.03 ms to the start-up)."""

TAIL_STEP_COST = 3.0
"""Cost of one level walked in the tail (level by level over the rows not yet at a leaf, at
least one step per row to find that it is at one) relative to one level walked eight rows in
step. The fixed levels of a tree minimise ``levels + TAIL_STEP_COST * (1 + E[leaf depth -
levels, if positive])`` over its training samples; no tail at all when ``levels`` is the tree's
depth. Measured on fully grown trees (depth 37-56): 3 and 6 equally fast, 1.5 -25 %, no tail
-20 %, no fixed levels -60 %; isolation trees and ``max_depth=10`` forests get no tail."""

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


def _compile_step(step: Any) -> _Step | None:
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
def _forest_sum_serial(
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
def _forest_sum_parallel(
    x: Any, block_rows: Any, roots: Any, levels: Any, tails: Any, nodes: Any, thresholds: Any,
    missing_left: Any, values: Any, out: Any,
) -> None:  # fmt: skip
    """As :func:`_forest_sum_serial`, the row blocks shared among numba's threads."""
    n = x.shape[0]
    n_blocks = (n + block_rows - 1) // block_rows
    for b in numba.prange(n_blocks):
        start = b * block_rows
        stop = min(n, start + block_rows)
        _walk_block(
            x, start, stop, roots, levels, tails, nodes, thresholds, missing_left, values, out
        )


_PARALLEL_LOCK = threading.Lock()


def _max_threads() -> int:
    return max(1, int(getattr(numba.config, "NUMBA_NUM_THREADS", 1)))


# --------------------------------------------------------------------------------------------
# Flattened forest
# --------------------------------------------------------------------------------------------


def average_path_length(n_samples: NDArray[Any]) -> NDArray[np.float64]:
    """c(n): average path length of an unsuccessful BST search in n samples (as scikit-learn)."""
    n = np.asarray(n_samples, dtype=np.float64)
    out = np.zeros(n.shape, dtype=np.float64)
    many = n > 2
    out[n == 2] = 1.0
    out[many] = 2.0 * (np.log(n[many] - 1.0) + np.euler_gamma) - 2.0 * (n[many] - 1.0) / n[many]
    return out


def _round_down_f32(threshold: NDArray[np.float64]) -> NDArray[np.float32]:
    """Largest float32 <= threshold: for float32 x, ``x <= t`` iff ``x <= result``."""
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], _F32_NEG_INF)
    return t32


def _node_depths(tree: Any) -> NDArray[np.int64]:
    """Depth of every node with the root at 1 (IsolationForest's decision path length)."""
    if hasattr(tree, "compute_node_depths"):
        return np.asarray(tree.compute_node_depths(), dtype=np.int64)
    depth = np.zeros(tree.node_count, dtype=np.int64)
    depth[0] = 1
    for node in range(tree.node_count):  # children always follow their parent
        for child in (tree.children_left[node], tree.children_right[node]):
            if child >= 0:
                depth[child] = depth[node] + 1
    return depth


def _fixed_levels(tree: Any) -> int:
    """Levels every row walks in step (see :data:`TAIL_STEP_COST`): the tree's depth unless
    stopping earlier and finishing the deeper rows in the tail is cheaper for its training
    samples."""
    max_depth = int(tree.max_depth)
    if max_depth == 0:
        return 0
    leaf = np.asarray(tree.children_left) < 0
    depth = (_node_depths(tree) - 1)[leaf].astype(np.float64)  # root at 0
    weight = np.asarray(tree.n_node_samples, dtype=np.float64)[leaf]
    weight = weight / weight.sum() if weight.sum() > 0 else np.full(weight.shape, 1 / weight.size)
    best, best_cost = max_depth, float(max_depth)
    for k in range(max_depth):
        cost = k + TAIL_STEP_COST * (1.0 + float(weight @ np.maximum(depth - k, 0.0)))
        if cost < best_cost:
            best, best_cost = k, cost
    return best


@dataclass
class _Forest:
    """All trees of one ensemble in flat node arrays, as the kernels take them."""

    roots: NDArray[np.uint64]  # first node of each tree
    levels: NDArray[np.int64]  # levels walked in step, per tree
    tails: NDArray[np.bool_]  # the tree has leaves deeper than its levels
    nodes: NDArray[np.uint32]  # (n_nodes, 4): feature, threshold bits, left, right
    missing_left: NDArray[np.bool_]  # NaN goes left (True at leaves)
    values: NDArray[np.float64]  # (n_nodes, 1) or (n_nodes, n_classes), C order
    max_depth: int

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def nbytes(self) -> int:
        arrays: list[NDArray[Any]] = [
            self.roots, self.levels, self.tails, self.nodes, self.missing_left, self.values
        ]  # fmt: skip
        return int(sum(a.nbytes for a in arrays))

    @classmethod
    def build(
        cls,
        trees: Sequence[Any],
        node_values: Sequence[NDArray[np.float64]],
        feature_maps: Sequence[NDArray[np.int64] | None],
    ) -> _Forest:
        if not trees:
            raise UnsupportedModelError("the forest has no trees")
        sizes = np.array([t.node_count for t in trees], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        n_nodes = int(sizes.sum())
        if n_nodes >= 2**31:
            raise UnsupportedModelError("the forest has too many nodes for 32-bit node indices")
        nodes = np.zeros((n_nodes, 4), dtype=np.uint32)
        threshold = np.full(n_nodes, np.inf, dtype=np.float32)
        missing_left = np.ones(n_nodes, dtype=np.bool_)
        for tree, offset, fmap in zip(trees, offsets, feature_maps, strict=True):
            n = int(tree.node_count)
            span = slice(int(offset), int(offset) + n)
            node = np.arange(n, dtype=np.int64)
            leaf = np.asarray(tree.children_left) < 0
            feat = np.where(leaf, 0, np.asarray(tree.feature, dtype=np.int64))
            nodes[span, 0] = feat if fmap is None else np.where(leaf, 0, fmap[feat])
            thr = _round_down_f32(np.asarray(tree.threshold, dtype=np.float64))
            threshold[span] = np.where(leaf, np.float32(np.inf), thr)
            nodes[span, 2] = np.where(leaf, node, np.asarray(tree.children_left)) + offset
            nodes[span, 3] = np.where(leaf, node, np.asarray(tree.children_right)) + offset
            mgl = getattr(tree, "missing_go_to_left", None)
            if mgl is not None:
                missing_left[span] = leaf | (np.asarray(mgl) != 0)
        nodes[:, 1] = threshold.view(np.uint32)
        levels = np.array([_fixed_levels(t) for t in trees], dtype=np.int64)
        depths = np.array([int(t.max_depth) for t in trees], dtype=np.int64)
        values = np.concatenate([np.asarray(v, dtype=np.float64) for v in node_values], axis=0)
        return cls(
            roots=offsets.astype(np.uint64),
            levels=levels,
            tails=levels < depths,
            nodes=nodes,
            missing_left=missing_left,
            values=np.ascontiguousarray(values.reshape(n_nodes, -1)),
            max_depth=int(depths.max()),
        )

    def tree_sum(self, x32: NDArray[np.float32], n_threads: int, serial_rows: int) -> Any:
        """Sum over trees (in tree order) of the leaf values of every row of ``x32``
        (C-contiguous float32): shape (rows, values width)."""
        n = x32.shape[0]
        out = np.zeros((n, self.values.shape[1]), dtype=np.float64)
        if n == 0:
            return out
        flat = self.nodes.reshape(-1)
        nan = self.missing_left if np.isnan(x32).any() else None
        threads = min(n_threads, _max_threads())
        if threads > 1 and n >= serial_rows and _PARALLEL_LOCK.acquire(blocking=False):
            try:
                previous = numba.get_num_threads()
                numba.set_num_threads(threads)
                try:
                    _forest_sum_parallel(
                        x32, _block_rows(x32, threads), self.roots, self.levels, self.tails,
                        flat, flat.view(np.float32), nan, self.values, out,
                    )  # fmt: skip
                finally:
                    numba.set_num_threads(previous)
            finally:
                _PARALLEL_LOCK.release()
        else:
            _forest_sum_serial(
                x32, _block_rows(x32, 1), self.roots, self.levels, self.tails, flat,
                flat.view(np.float32), nan, self.values, out,
            )  # fmt: skip
        return out


def _block_rows(x32: NDArray[np.float32], threads: int) -> int:
    """Rows per block (a multiple of 8): :data:`BLOCK_BYTES` of features, or fewer so that the
    batch makes a multiple of ``threads`` blocks of equal size (numba shares them statically)."""
    n, width = x32.shape
    rows = max(8, BLOCK_BYTES // (4 * max(1, width)))
    if threads > 1:
        n_blocks = threads * -(-n // (threads * rows))
        rows = -(-n // n_blocks)
    return -(-rows // 8) * 8


# --------------------------------------------------------------------------------------------
# The scorer
# --------------------------------------------------------------------------------------------


class FastScorer:
    """A compiled pipeline: same methods and results as the scikit-learn object it came from.

    ``n_threads`` (default: numba's thread pool, i.e. the CPU count) numba threads evaluate a
    batch of at least ``serial_rows`` rows; smaller batches and single rows run in the
    caller's thread. A 1-D input is taken as one row. Safe to call from several threads.
    """

    def __init__(
        self,
        kind: Kind,
        forest: _Forest,
        steps: Sequence[_Step],
        n_features_in: int,
        feature_names_in: Sequence[str] | None,
        *,
        classes: NDArray[Any] | None = None,
        offset: float = 0.0,
        max_samples: int = 0,
        allow_nan: bool = True,
        n_threads: int | None = None,
        serial_rows: int | None = None,
        source: str = "",
    ) -> None:
        self.kind: Kind = kind
        self.forest = forest
        self.steps = tuple(steps)
        self.n_features_in_ = int(n_features_in)
        self.feature_names_in_ = None if feature_names_in is None else list(feature_names_in)
        if classes is not None:
            self.classes_ = classes
        self.offset_ = float(offset)
        self.max_samples = int(max_samples)
        denominator = forest.n_trees * average_path_length(np.array([max_samples]))
        self._denominator = denominator  # shape (1,), as scikit-learn
        self.allow_nan = bool(allow_nan)
        requested = _max_threads() if n_threads is None else int(n_threads)
        self.n_threads = max(1, min(requested, _max_threads()))
        self.serial_rows = max(1, SERIAL_ROWS if serial_rows is None else int(serial_rows))
        self.source = source
        self.jit_seconds = 0.0

    # -- description --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        f = self.forest
        return {
            "kind": self.kind,
            "source": self.source,
            "engine": f"numba {numba.__version__}",
            "trees": f.n_trees,
            "nodes": f.n_nodes,
            "max_depth": f.max_depth,
            "trees_with_tail": int(f.tails.sum()),
            "memory_bytes": f.nbytes,
            "threads": self.n_threads,
            "serial_rows": self.serial_rows,
            "block_rows": _block_rows(np.empty((0, self.n_features_in_), np.float32), 1),
            "jit_seconds": self.jit_seconds,
            "tolerance": TOLERANCE,
        }

    def __repr__(self) -> str:
        d = self.describe()
        return (
            f"FastScorer({d['kind']}, trees={d['trees']}, nodes={d['nodes']}, "
            f"depth={d['max_depth']}, threads={d['threads']})"
        )

    def warm_up(self) -> float:
        """Compile (or load from numba's cache) the kernels this scorer uses; seconds taken."""
        started = time.perf_counter()
        x = np.zeros((2, self.n_features_in_), dtype=np.float32)
        with_nan = x.copy()
        with_nan[:, 0] = np.nan
        for batch in (x, with_nan):  # a kernel without and one with the NaN test
            self.forest.tree_sum(batch[:1], 1, self.serial_rows)
            if self.n_threads > 1:
                self.forest.tree_sum(batch, self.n_threads, 1)
        self.jit_seconds = time.perf_counter() - started
        return self.jit_seconds

    # -- input ----------------------------------------------------------------------------------
    def _matrix(self, X: Any) -> NDArray[np.floating[Any]]:
        if hasattr(X, "columns") and hasattr(X, "to_numpy"):
            if self.feature_names_in_ is not None:
                columns = [str(c) for c in X.columns]
                missing = [n for n in self.feature_names_in_ if n not in columns]
                if missing:
                    raise ValueError(f"missing feature columns: {missing}")
                if columns != self.feature_names_in_:
                    X = X.loc[:, self.feature_names_in_]
            X = X.to_numpy()
        arr = np.asarray(X)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise ValueError(f"expected a 2-D array of rows, got shape {arr.shape}")
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {arr.shape[1]} features, but the model expects {self.n_features_in_}"
            )
        if arr.dtype != np.float64 and arr.dtype != np.float32:
            arr = arr.astype(np.float64)
        return arr

    def transform(self, X: Any) -> NDArray[np.float32]:
        """Preprocessed rows as the trees see them: C-contiguous, writable float32."""
        arr = self._matrix(X)
        for step in self.steps:
            arr = step.apply(arr)
        x32 = np.ascontiguousarray(arr, dtype=np.float32)
        if not x32.flags.writeable:  # one kernel signature: a read-only array would recompile
            x32 = x32.copy()
        if self.kind == "random_forest":
            if np.isinf(x32).any():
                raise ValueError(
                    "Input X contains infinity or a value too large for dtype('float32')."
                )
            if not self.allow_nan and np.isnan(x32).any():
                raise ValueError("Input X contains NaN.")
        return x32

    def _tree_sum(self, X: Any) -> Any:
        return self.forest.tree_sum(self.transform(X), self.n_threads, self.serial_rows)

    def __getitem__(self, index: int) -> FastScorer:
        """``scorer[-1]`` is the scorer itself, so code written for ``pipeline[-1].offset_``
        (the final step's attributes) works unchanged."""
        if index in (-1, 0):
            return self
        raise IndexError("a FastScorer has a single step: use [-1]")


class IsolationForestScorer(FastScorer):
    """Compiled StandardScaler + IsolationForest: score_samples, decision_function, predict."""

    def score_samples(self, X: Any) -> NDArray[np.float64]:
        """IsolationForest.score_samples: the lower, the more abnormal."""
        depths = self._tree_sum(X).reshape(-1)
        denominator = self._denominator
        scores = 2 ** (
            -np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0)
        )
        return -scores

    def decision_function(self, X: Any) -> NDArray[np.float64]:
        """IsolationForest.decision_function: score_samples - offset_ (negative = outlier)."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> NDArray[Any]:
        """+1 inlier, -1 outlier (decision_function < 0)."""
        decision = self.decision_function(X)
        labels = np.ones_like(decision, dtype=int)
        labels[decision < 0] = -1
        return labels


class ForestClassifierScorer(FastScorer):
    """Compiled StandardScaler + RandomForestClassifier: predict_proba, predict, classes_."""

    classes_: NDArray[Any]

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """RandomForestClassifier.predict_proba (columns in ``classes_`` order)."""
        proba: NDArray[np.float64] = self._tree_sum(X)
        proba /= self.forest.n_trees
        return proba

    def predict(self, X: Any) -> NDArray[Any]:
        """The most probable class (first one on ties), as scikit-learn."""
        return self.classes_.take(np.argmax(self.predict_proba(X), axis=1), axis=0)


# --------------------------------------------------------------------------------------------
# Compilation and verification
# --------------------------------------------------------------------------------------------


def _split_pipeline(model: Any) -> tuple[list[Any], Any]:
    steps = getattr(model, "steps", None)
    if steps is None:
        return [], model
    objects = [step for _, step in steps]
    if not objects:
        raise UnsupportedModelError("empty pipeline")
    return objects[:-1], objects[-1]


def _classifier_allows_nan(final: Any) -> bool:
    """Whether the forest's ``predict_proba`` accepts NaN (its trees' ``allow_nan`` tag)."""
    try:
        return bool(final.estimators_[0]._support_missing_values(np.zeros((1, 1))))
    except (AttributeError, IndexError, TypeError):
        return True


def compile_pipeline(
    pipeline: Any,
    *,
    n_threads: int | None = None,
    serial_rows: int | None = None,
    warm_up: bool = True,
) -> FastScorer:
    """Compile a fitted pipeline (or bare forest) into a :class:`FastScorer`.

    ``n_threads`` numba threads (default: numba's pool, the CPU count; capped at it) evaluate
    batches of at least ``serial_rows`` rows (default :data:`SERIAL_ROWS`). ``warm_up`` runs
    the kernels once on a dummy row so JIT compilation / cache loading is paid here, not in
    the first call. Raises :class:`UnsupportedModelError` for anything it cannot reproduce
    exactly.
    """
    tuning: dict[str, Any] = {"n_threads": n_threads, "serial_rows": serial_rows}
    pre, final = _split_pipeline(pipeline)
    steps = [s for s in (_compile_step(step) for step in pre) if s is not None]
    name = type(final).__name__
    if name not in SUPPORTED_ESTIMATORS:
        raise UnsupportedModelError(
            f"unsupported final estimator {name} (supported: {', '.join(SUPPORTED_ESTIMATORS)})"
        )
    if not hasattr(final, "estimators_"):
        raise UnsupportedModelError(f"{name} is not fitted")
    first = pre[0] if pre else final
    n_features = int(getattr(first, "n_features_in_", getattr(final, "n_features_in_", 0)))
    names = getattr(first, "feature_names_in_", None)
    feature_names = None if names is None else [str(n) for n in names]
    trees = [est.tree_ for est in final.estimators_]
    source = type(pipeline).__name__ if pre else name

    scorer: FastScorer
    if name == "IsolationForest":
        n_model_features = int(final.n_features_in_)
        subsample = int(final._max_features) != n_model_features
        feature_maps: list[NDArray[np.int64] | None] = [
            np.asarray(f, dtype=np.int64) if subsample else None for f in final.estimators_features_
        ]
        path_lengths = getattr(final, "_decision_path_lengths", None)
        average_lengths = getattr(final, "_average_path_length_per_tree", None)
        values: list[NDArray[np.float64]] = []
        for i, tree in enumerate(trees):
            dpl = path_lengths[i] if path_lengths is not None else _node_depths(tree)
            apl = (
                average_lengths[i]
                if average_lengths is not None
                else average_path_length(np.asarray(tree.n_node_samples))
            )
            # as scikit-learn: depths += dpl[leaf] + apl[leaf] - 1.0, per tree in tree order
            values.append(np.asarray(dpl) + np.asarray(apl) - 1.0)
        scorer = IsolationForestScorer(
            "isolation_forest",
            _Forest.build(trees, values, feature_maps),
            steps,
            n_features,
            feature_names,
            offset=float(final.offset_),
            max_samples=int(final._max_samples),
            **tuning,
            source=source,
        )
    else:
        if int(getattr(final, "n_outputs_", 1)) != 1:
            raise UnsupportedModelError("multi-output forests are not supported")
        n_classes = int(final.n_classes_)
        values = [np.asarray(t.value, dtype=np.float64)[:, 0, :n_classes] for t in trees]
        scorer = ForestClassifierScorer(
            "random_forest",
            _Forest.build(trees, values, [None] * len(trees)),
            steps,
            n_features,
            feature_names,
            classes=np.asarray(final.classes_),
            allow_nan=_classifier_allows_nan(final),
            **tuning,
            source=source,
        )
    if warm_up:
        scorer.warm_up()
    return scorer


def compare(scorer: FastScorer, pipeline: Any, X: Any) -> dict[str, float]:
    """Maximum absolute difference per method between the scorer and the pipeline on ``X``.

    Isolation forest: score_samples, decision_function and the share of differing predict
    labels; random forest: predict_proba and the share of differing predict labels.
    """
    if isinstance(scorer, IsolationForestScorer):
        fast_scores = scorer.score_samples(X)
        return {
            "score_samples": float(
                np.max(np.abs(fast_scores - pipeline.score_samples(X)), initial=0.0)
            ),
            "decision_function": float(
                np.max(
                    np.abs(scorer.decision_function(X) - pipeline.decision_function(X)),
                    initial=0.0,
                )
            ),
            "predict_mismatch_share": float(np.mean(scorer.predict(X) != pipeline.predict(X))),
        }
    assert isinstance(scorer, ForestClassifierScorer)
    return {
        "predict_proba": float(
            np.max(np.abs(scorer.predict_proba(X) - pipeline.predict_proba(X)), initial=0.0)
        ),
        "predict_mismatch_share": float(np.mean(scorer.predict(X) != pipeline.predict(X))),
    }


def verify(scorer: FastScorer, pipeline: Any, X: Any, atol: float = TOLERANCE) -> dict[str, float]:
    """:func:`compare`, raising :class:`MismatchError` when any difference exceeds ``atol``.

    (A predict label may only differ where the score is within ``atol`` of the boundary.)
    """
    diffs = compare(scorer, pipeline, X)
    bad = {k: v for k, v in diffs.items() if not k.endswith("_share") and not v <= atol}
    if bad:
        raise MismatchError(f"fast evaluator differs from scikit-learn by more than {atol}: {bad}")
    return diffs
