"""Scorers built from a fitted pipeline, and their verification against scikit-learn."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from ml.scoring.fast_evaluator.forest import (
    FlatForest,
    average_path_length,
    block_rows,
    node_depths,
)
from ml.scoring.fast_evaluator.kernels import (
    SERIAL_ROWS,
    SUPPORTED_ESTIMATORS,
    TOLERANCE,
    Kind,
    MismatchError,
    UnsupportedModelError,
    _Step,
    compile_step,
    max_threads,
)


class FastScorer:
    """A compiled pipeline: same methods and results as the scikit-learn object it came from.

    ``n_threads`` (default: numba's thread pool, i.e. the CPU count) numba threads evaluate a
    batch of at least ``serial_rows`` rows; smaller batches and single rows run in the
    caller's thread. A 1-D input is taken as one row. Safe to call from several threads.
    """

    def __init__(
        self,
        kind: Kind,
        forest: FlatForest,
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
        requested = max_threads() if n_threads is None else int(n_threads)
        self.n_threads = max(1, min(requested, max_threads()))
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
            "block_rows": block_rows(np.empty((0, self.n_features_in_), np.float32), 1),
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
    steps = [s for s in (compile_step(step) for step in pre) if s is not None]
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
            dpl = path_lengths[i] if path_lengths is not None else node_depths(tree)
            apl = (
                average_lengths[i]
                if average_lengths is not None
                else average_path_length(np.asarray(tree.n_node_samples))
            )
            # as scikit-learn: depths += dpl[leaf] + apl[leaf] - 1.0, per tree in tree order
            values.append(np.asarray(dpl) + np.asarray(apl) - 1.0)
        scorer = IsolationForestScorer(
            "isolation_forest",
            FlatForest.build(trees, values, feature_maps),
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
            FlatForest.build(trees, values, [None] * len(trees)),
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
