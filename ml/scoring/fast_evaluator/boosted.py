"""LightGBM binary boosters for the fast evaluator: the trees of ``Booster.dump_model()``
flattened once per model into node arrays, and one numba kernel that walks every tree once per
row and gives both the raw margin (``predict(raw_score=True)``) and the path attribution of
``ml.transaction_model.path_contributions`` (each split on the row's path credits its feature
with the child's value minus the node's ``internal_value``; no bias column), equal to both
within ``kernels.TOLERANCE`` (tests/python/scoring/test_boosted_evaluator.py).

LightGBM's decision rules, as its ``Tree::NumericalDecision`` / ``CategoricalDecision`` on the
double input and its dense-row reader: a value with ``|x| <= kZeroThreshold`` (1e-35f) is read
as 0; numerical ``<=`` splits with ``missing_type`` None (NaN is read as 0), Zero (0 and NaN
take the default side) or NaN (NaN takes the default side); categorical ``==`` splits (the
pipeline's ordinal-coded ``transaction_type`` / ``merchant_category``): the ``'||'``-joined
category set of ``threshold`` goes left (the value truncated to an integer code), NaN,
negative codes and codes outside the set right.
Refused with ``UnsupportedModelError``: multiclass, linear trees, random-forest mode
(``average_output``), objectives other than ``binary`` with sigmoid 1."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from ml.scoring.fast_evaluator.kernels import _PARALLEL_LOCK, UnsupportedModelError, max_threads

ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float literal)
SERIAL_ROWS = 64
"""Batches below this run serially in the caller's thread (one row: the real-time service)."""

_CATEGORICAL, _DEFAULT_LEFT = 1, 2  # bits of a split's flags; bits 2-3: its missing type
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


@dataclass(frozen=True)
class FlatBooster:
    """All trees of a LightGBM binary booster as node arrays. Node ``k`` of the forest:
    ``nodes[k]`` = (column read, left child, right child, feature credited), ``reals[k]`` =
    (threshold, value change going left, going right, leaf value); it goes left when the
    column read is ``<=`` the threshold. A leaf is a node whose children are itself (changes
    0), so every row walks exactly ``depths[t]`` steps of tree ``t``, with no branch.

    The columns read are the row's features (as LightGBM reads them, NaN as 0: right for a
    numerical split with missing type None) and, after them, one *decision column* per other
    split (categorical, or a missing type Zero/NaN): 0 where LightGBM's rule sends the row
    left, 1 right, computed per row before the walk (``slow_*``), read against 0.5."""

    roots: NDArray[np.int64]
    depths: NDArray[np.int64]
    nodes: NDArray[np.uint32]  # (nodes, 4)
    reals: NDArray[np.float64]  # (nodes, 4)
    slow_feature: NDArray[np.int64]  # per decision column: its split's feature
    slow_flags: NDArray[np.int64]  # bit 0 categorical, bit 1 default left, 2-3 missing type,
    slow_threshold: NDArray[np.float64]  # (categorical: bits >> 4 = the set's first word)
    slow_words: NDArray[np.int64]  # words of the categorical set
    bitsets: NDArray[np.uint32]
    n_features: int

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @classmethod
    def from_booster(cls, booster: Any) -> FlatBooster:
        return cls.from_dump(booster.dump_model(), int(booster.num_feature()))

    @classmethod
    def from_dump(cls, model: dict[str, Any], n_features: int) -> FlatBooster:
        _check_supported(model)
        ints: list[tuple[int, int, int, int]] = []
        reals: list[tuple[float, float, float, float]] = []
        slow: list[tuple[int, int, float, int]] = []
        bits: list[int] = []
        roots: list[int] = []
        depths: list[int] = []
        for info in model["tree_info"]:
            roots.append(len(ints))
            depth = 0
            stack: list[tuple[dict[str, Any], int]] = [(info["tree_structure"], 0)]
            index: dict[int, int] = {}
            order: list[dict[str, Any]] = []
            while stack:  # number the nodes depth first, parents before children
                node, level = stack.pop()
                index[id(node)] = len(ints) + len(order)
                order.append(node)
                depth = max(depth, level)
                if "split_feature" in node:
                    stack.append((node["right_child"], level + 1))
                    stack.append((node["left_child"], level + 1))
            for node in order:
                me = index[id(node)]
                if "split_feature" not in node:
                    ints.append((0, me, me, 0))
                    reals.append((np.inf, 0.0, 0.0, float(node["leaf_value"])))
                    continue
                feature = int(node["split_feature"])
                if not 0 <= feature < n_features:
                    raise UnsupportedModelError(f"split on feature {feature} of {n_features}")
                flags, threshold, words = _split_rule(node, bits)
                read = feature
                if flags:  # a decision column of its own
                    read = n_features + len(slow)
                    slow.append((feature, flags, threshold, words))
                    threshold = 0.5
                value = float(node["internal_value"])
                left, right = node["left_child"], node["right_child"]
                ints.append((read, index[id(left)], index[id(right)], feature))
                reals.append((threshold, _value(left) - value, _value(right) - value, 0.0))
            depths.append(depth)
        if not roots:
            raise UnsupportedModelError("the booster has no trees")
        columns = list(zip(*slow, strict=True)) if slow else [[], [], [], []]
        return cls(
            roots=np.asarray(roots, dtype=np.int64),
            depths=np.asarray(depths, dtype=np.int64),
            nodes=np.ascontiguousarray(np.asarray(ints, dtype=np.uint32).reshape(-1, 4)),
            reals=np.ascontiguousarray(np.asarray(reals, dtype=np.float64).reshape(-1, 4)),
            slow_feature=np.asarray(columns[0], dtype=np.int64),
            slow_flags=np.asarray(columns[1], dtype=np.int64),
            slow_threshold=np.asarray(columns[2], dtype=np.float64),
            slow_words=np.asarray(columns[3], dtype=np.int64),
            bitsets=np.asarray(bits if bits else [0], dtype=np.uint32),
            n_features=n_features,
        )

    def margin_and_path(
        self, matrix: NDArray[Any], n_threads: int | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Raw margin (rows,) and path attribution (rows, features) of every row of
        ``matrix`` (float64, the classifier's columns); parallel over blocks of rows from
        :data:`SERIAL_ROWS` rows; each row's numbers are the same in any batch."""
        x = np.ascontiguousarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"matrix of shape {x.shape}: the booster takes {self.n_features} features"
            )
        n = x.shape[0]
        margin = np.zeros(n, dtype=np.float64)
        contrib = np.zeros((n, self.n_features), dtype=np.float64)
        args = (
            x, self.roots, self.depths, self.nodes.reshape(-1), self.reals.reshape(-1),
            self.slow_feature, self.slow_flags, self.slow_threshold, self.slow_words,
            self.bitsets, margin, contrib.reshape(-1),
        )  # fmt: skip
        threads = min(max_threads(), n_threads or max_threads())
        if threads > 1 and n >= SERIAL_ROWS and _PARALLEL_LOCK.acquire(blocking=False):
            try:
                previous = numba.get_num_threads()
                numba.set_num_threads(threads)
                try:
                    _margin_and_path_parallel(*args)
                finally:
                    numba.set_num_threads(previous)
            finally:
                _PARALLEL_LOCK.release()
        else:
            _margin_and_path_serial(*args)
        return margin, contrib


def _value(node: dict[str, Any]) -> float:
    return float(node["leaf_value"] if "split_feature" not in node else node["internal_value"])


def _split_rule(node: dict[str, Any], bits: list[int]) -> tuple[int, float, int]:
    """(flags, numeric threshold, words of the category bitset appended to ``bits``)."""
    missing = _MISSING.get(str(node.get("missing_type", "None")))
    if missing is None:
        raise UnsupportedModelError(f"unknown LightGBM missing_type {node.get('missing_type')!r}")
    decision = node.get("decision_type")
    if decision == "<=":
        # the default side only matters with a missing type (flags 0: the kernel's fast case)
        default_left = bool(node.get("default_left")) and missing != 0
        return (_DEFAULT_LEFT if default_left else 0) | (missing << 2), float(node["threshold"]), 0
    if decision != "==":
        raise UnsupportedModelError(f"unknown LightGBM decision_type {decision!r}")
    categories = [int(c) for c in str(node["threshold"]).split("||") if c != ""]
    if not categories or min(categories) < 0:
        raise UnsupportedModelError(f"categorical split with category set {node['threshold']!r}")
    n_words = max(categories) // 32 + 1
    start = len(bits)
    bits.extend([0] * n_words)
    for c in categories:
        bits[start + c // 32] |= 1 << (c % 32)
    return _CATEGORICAL | (start << 4), np.nan, n_words  # NaN goes right: no missing type


def _check_supported(model: dict[str, Any]) -> None:
    objective = str(model.get("objective", "")).split()
    if not objective or objective[0] != "binary" or "sigmoid:1" not in objective:
        raise UnsupportedModelError(
            f"LightGBM objective {model.get('objective')!r}: only 'binary sigmoid:1' is supported"
        )
    if int(model.get("num_class", 1)) != 1 or int(model.get("num_tree_per_iteration", 1)) != 1:
        raise UnsupportedModelError("multiclass LightGBM models are not supported")
    if model.get("average_output"):
        raise UnsupportedModelError("LightGBM random-forest mode (average_output) is not supported")
    for info in model["tree_info"]:
        if _has_linear_leaf(info["tree_structure"]):
            raise UnsupportedModelError("LightGBM linear trees are not supported")


def _has_linear_leaf(root: dict[str, Any]) -> bool:
    stack = [root]
    while stack:
        node = stack.pop()
        if "leaf_coeff" in node or "leaf_const" in node:
            return True
        if "split_feature" in node:
            stack.extend((node["left_child"], node["right_child"]))
    return False


# --------------------------------------------------------------------------------------------
# The kernel
# --------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _goes_left(v: Any, flags: Any, threshold: Any, bitsets: Any, n_words: Any) -> bool:
    """LightGBM's decision at a split for the value ``v`` (as its dense-row reader gives it:
    tiny values are 0)."""
    if flags & 1:  # categorical: the set goes left; NaN, negative, outside the set right
        if v != v or v <= -1.0 or v >= 2147483648.0:
            return False
        code = np.int64(v)  # truncation, as static_cast<int>: -0.5 is category 0
        word = code >> 5
        if word >= n_words:
            return False
        return ((bitsets[(flags >> 4) + word] >> np.uint32(code & 31)) & np.uint32(1)) == 1
    missing = (flags >> 2) & 3
    if v != v:
        if missing == 2:
            return (flags & 2) != 0
        v = 0.0
    if missing == 1 and v == 0.0:
        return (flags & 2) != 0
    return v <= threshold


BLOCK_ROWS = 128
"""Rows taken through every tree, tree after tree: one tree's nodes (~2 KB for 31 leaves)
stay in the L1 cache while the block's rows walk it, eight rows in step (eight independent
chains of loads the CPU overlaps); the block's columns and contributions stay in L2."""

# Indices are uint64 (numba adds a negative-index check to every signed index).
_U = np.uint64
_2, _3, _4 = np.uint64(2), np.uint64(3), np.uint64(4)


@numba.njit(cache=True, nogil=True, inline="always")
def _step(node: Any, row: Any, out: Any, columns: Any, nodes: Any, reals: Any, contrib: Any) -> Any:
    """One level down for one row, its value change credited to the split's feature."""
    base = _4 * node
    left = columns[row + _U(nodes[base])] <= reals[base]
    side = _2 - _U(left)  # 1 left, 2 right: an index, not a branch
    contrib[out + _U(nodes[base + _3])] += reals[base + side]
    return _U(nodes[base + side])


@numba.njit(cache=True, nogil=True)
def _rows(
    x: Any, start: Any, stop: Any, roots: Any, depths: Any, nodes: Any, reals: Any,
    slow_feature: Any, slow_flags: Any, slow_threshold: Any, slow_words: Any, bitsets: Any,
    margin: Any, contrib: Any,
) -> None:  # fmt: skip
    """Margin and path attribution of rows ``start:stop`` (``nodes``, ``reals``,
    ``contrib`` flat, C order), in tree order for every row."""
    n_features = x.shape[1]
    width = n_features + slow_feature.shape[0]
    w = _U(width)
    nf = _U(n_features)
    columns = np.empty(BLOCK_ROWS * width, dtype=np.float64)
    total = np.zeros(BLOCK_ROWS, dtype=np.float64)
    for first in range(start, stop, BLOCK_ROWS):
        rows = min(BLOCK_ROWS, stop - first)
        for k in range(rows):
            total[k] = 0.0
            at = k * width
            for f in range(n_features):
                v = x[first + k, f]
                v = 0.0 if abs(v) <= ZERO_THRESHOLD else v  # LightGBM's dense-row reader
                columns[at + f] = 0.0 if v != v else v
            for j in range(slow_feature.shape[0]):
                v = x[first + k, slow_feature[j]]
                v = 0.0 if abs(v) <= ZERO_THRESHOLD else v
                left = _goes_left(v, slow_flags[j], slow_threshold[j], bitsets, slow_words[j])
                columns[at + n_features + j] = 0.0 if left else 1.0
        o = _U(first) * nf  # the block's first output row, flat
        for t in range(roots.shape[0]):
            root = _U(roots[t])
            depth = depths[t]
            k = 0
            while k + 8 <= rows:
                r0 = _U(k) * w
                r1, r2, r3 = r0 + w, r0 + _2 * w, r0 + _3 * w
                r4, r5, r6, r7 = r0 + _4 * w, r1 + _4 * w, r2 + _4 * w, r3 + _4 * w
                p0 = o + _U(k) * nf
                p1, p2, p3 = p0 + nf, p0 + _2 * nf, p0 + _3 * nf
                p4, p5, p6, p7 = p0 + _4 * nf, p1 + _4 * nf, p2 + _4 * nf, p3 + _4 * nf
                n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = root
                for _ in range(depth):
                    n0 = _step(n0, r0, p0, columns, nodes, reals, contrib)
                    n1 = _step(n1, r1, p1, columns, nodes, reals, contrib)
                    n2 = _step(n2, r2, p2, columns, nodes, reals, contrib)
                    n3 = _step(n3, r3, p3, columns, nodes, reals, contrib)
                    n4 = _step(n4, r4, p4, columns, nodes, reals, contrib)
                    n5 = _step(n5, r5, p5, columns, nodes, reals, contrib)
                    n6 = _step(n6, r6, p6, columns, nodes, reals, contrib)
                    n7 = _step(n7, r7, p7, columns, nodes, reals, contrib)
                total[k] += reals[_4 * n0 + _3]
                total[k + 1] += reals[_4 * n1 + _3]
                total[k + 2] += reals[_4 * n2 + _3]
                total[k + 3] += reals[_4 * n3 + _3]
                total[k + 4] += reals[_4 * n4 + _3]
                total[k + 5] += reals[_4 * n5 + _3]
                total[k + 6] += reals[_4 * n6 + _3]
                total[k + 7] += reals[_4 * n7 + _3]
                k += 8
            while k < rows:  # the last < 8 rows (a single row: only this loop)
                r0 = _U(k) * w
                p0 = o + _U(k) * nf
                n0 = root
                for _ in range(depth):
                    n0 = _step(n0, r0, p0, columns, nodes, reals, contrib)
                total[k] += reals[_4 * n0 + _3]
                k += 1
        for k in range(rows):
            margin[first + k] = total[k]


@numba.njit(cache=True, nogil=True)
def _margin_and_path_serial(
    x: Any, roots: Any, depths: Any, nodes: Any, reals: Any, slow_feature: Any,
    slow_flags: Any, slow_threshold: Any, slow_words: Any, bitsets: Any, margin: Any,
    contrib: Any,
) -> None:  # fmt: skip
    _rows(
        x, 0, x.shape[0], roots, depths, nodes, reals, slow_feature, slow_flags,
        slow_threshold, slow_words, bitsets, margin, contrib,
    )  # fmt: skip


@numba.njit(cache=True, nogil=True, parallel=True)
def _margin_and_path_parallel(
    x: Any, roots: Any, depths: Any, nodes: Any, reals: Any, slow_feature: Any,
    slow_flags: Any, slow_threshold: Any, slow_words: Any, bitsets: Any, margin: Any,
    contrib: Any,
) -> None:  # fmt: skip
    """As the serial kernel, the blocks of rows shared among numba's threads."""
    n = x.shape[0]
    for b in numba.prange((n + BLOCK_ROWS - 1) // BLOCK_ROWS):
        _rows(
            x, b * BLOCK_ROWS, min(n, (b + 1) * BLOCK_ROWS), roots, depths, nodes, reals,
            slow_feature, slow_flags, slow_threshold, slow_words, bitsets, margin, contrib,
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# One flat copy per booster
# --------------------------------------------------------------------------------------------

_FLAT: weakref.WeakKeyDictionary[Any, FlatBooster] = weakref.WeakKeyDictionary()
_FLAT_LOCK = threading.Lock()


def flat_booster(booster: Any) -> FlatBooster:
    """The booster's :class:`FlatBooster`, built once per booster object and dropped with it
    (a service that swaps models does not keep the old ones' arrays)."""
    with _FLAT_LOCK:
        flat = _FLAT.get(booster)
    if flat is None:
        flat = FlatBooster.from_booster(booster)
        with _FLAT_LOCK:
            _FLAT[booster] = flat
    return flat


def warm_up() -> None:
    """Compile (or load from numba's cache) both kernels on a one-tree dummy model."""
    dummy = FlatBooster(
        roots=np.zeros(1, dtype=np.int64),
        depths=np.zeros(1, dtype=np.int64),
        nodes=np.zeros((1, 4), dtype=np.uint32),
        reals=np.zeros((1, 4), dtype=np.float64),
        slow_feature=np.zeros(1, dtype=np.int64),
        slow_flags=np.ones(1, dtype=np.int64),
        slow_threshold=np.zeros(1, dtype=np.float64),
        slow_words=np.ones(1, dtype=np.int64),
        bitsets=np.ones(1, dtype=np.uint32),
        n_features=1,
    )
    dummy.margin_and_path(np.zeros((1, 1)))
    dummy.margin_and_path(np.zeros((SERIAL_ROWS, 1)), n_threads=2)
