"""A fitted scikit-learn forest flattened into the arrays the kernels walk."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from ml.scoring.fast_evaluator.kernels import (
    _F32_NEG_INF,
    _PARALLEL_LOCK,
    UnsupportedModelError,
    forest_sum_parallel,
    forest_sum_serial,
    max_threads,
)

BLOCK_BYTES = 256 * 1024
"""Rows are taken through every tree, tree after tree, in blocks of this many bytes of float32
features (4,096 rows of 16 features): large enough that the node arrays are read once per block
rather than once per few rows, small enough to stay in the L2 cache. Measured: 256-row blocks
ran RandomForest(200 trees, max_depth=10, 2.4 MB of nodes) at ~0.5x and fully grown trees at
~0.4x the speed of 4,096-row blocks; an isolation forest (0.4 MB) runs the same at 512 rows and
up. The parallel kernel splits a batch into a multiple of ``n_threads`` blocks of at most this
size."""

TAIL_STEP_COST = 3.0
"""Cost of one level walked in the tail (level by level over the rows not yet at a leaf, at
least one step per row to find that it is at one) relative to one level walked eight rows in
step. The fixed levels of a tree minimise ``levels + TAIL_STEP_COST * (1 + E[leaf depth -
levels, if positive])`` over its training samples; no tail at all when ``levels`` is the tree's
depth. Measured on fully grown trees (depth 37-56): 3 and 6 equally fast, 1.5 -25 %, no tail
-20 %, no fixed levels -60 %; isolation trees and ``max_depth=10`` forests get no tail."""

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


def node_depths(tree: Any) -> NDArray[np.int64]:
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
    depth = (node_depths(tree) - 1)[leaf].astype(np.float64)  # root at 0
    weight = np.asarray(tree.n_node_samples, dtype=np.float64)[leaf]
    weight = weight / weight.sum() if weight.sum() > 0 else np.full(weight.shape, 1 / weight.size)
    best, best_cost = max_depth, float(max_depth)
    for k in range(max_depth):
        cost = k + TAIL_STEP_COST * (1.0 + float(weight @ np.maximum(depth - k, 0.0)))
        if cost < best_cost:
            best, best_cost = k, cost
    return best


@dataclass
class FlatForest:
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
    ) -> FlatForest:
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
        threads = min(n_threads, max_threads())
        if threads > 1 and n >= serial_rows and _PARALLEL_LOCK.acquire(blocking=False):
            try:
                previous = numba.get_num_threads()
                numba.set_num_threads(threads)
                try:
                    forest_sum_parallel(
                        x32, block_rows(x32, threads), self.roots, self.levels, self.tails,
                        flat, flat.view(np.float32), nan, self.values, out,
                    )  # fmt: skip
                finally:
                    numba.set_num_threads(previous)
            finally:
                _PARALLEL_LOCK.release()
        else:
            forest_sum_serial(
                x32, block_rows(x32, 1), self.roots, self.levels, self.tails, flat,
                flat.view(np.float32), nan, self.values, out,
            )  # fmt: skip
        return out


def block_rows(x32: NDArray[np.float32], threads: int) -> int:
    """Rows per block (a multiple of 8): :data:`BLOCK_BYTES` of features, or fewer so that the
    batch makes a multiple of ``threads`` blocks of equal size (numba shares them statically)."""
    n, width = x32.shape
    rows = max(8, BLOCK_BYTES // (4 * max(1, width)))
    if threads > 1:
        n_blocks = threads * -(-n // (threads * rows))
        rows = -(-n // n_blocks)
    return -(-rows // 8) * 8
