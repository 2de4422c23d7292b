"""The transaction classifier's interface, shared by training, scoring and monitoring: what
the model sees (``FEATURE_COLUMNS`` of gold.transaction_risk_features, encoded by
``feature_matrix``) and what its score means (P(fraud) of one transaction from a scikit-learn
``Pipeline`` whose last step ``classifier`` has ``predict_proba``; the run's
``decision_threshold`` param/metric; ``contributions`` for reason codes, by the rule of
``ml.scoring.explanations``).

The logged MLflow model is ``Pipeline([("preprocess", ...), ("classifier", ...)])``: the
preprocessing step takes the frame ``feature_matrix`` returns (categoricals as pandas
``category`` with the fixed category lists of the seeds, numeric as float64) and returns the
classifier's matrix with the same column names (``get_feature_names_out``).
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.registry import TRANSACTION_CLASSIFIER_MODEL

SHORT_NAME = "transaction_classifier"
MODEL_NAME = TRANSACTION_CLASSIFIER_MODEL  # main.ml_models.fraud_detection_transaction_classifier

KEY_COLUMNS: tuple[str, ...] = ("transaction_id", "customer_id", "merchant_id", "transaction_at")

# = meta.feature_columns of models/gold/_gold__transaction_risk_features.yml, in order (a test
# holds them equal).
FEATURE_COLUMNS: tuple[str, ...] = (
    "amount",
    "transaction_hour",
    "is_night",
    "is_weekend",
    "transaction_type",
    "merchant_category",
    "customer_txn_count_1h",
    "customer_amount_sum_1h",
    "customer_amount_avg_1h",
    "customer_txn_count_1d",
    "customer_amount_sum_1d",
    "customer_amount_avg_1d",
    "customer_txn_count_7d",
    "customer_amount_sum_7d",
    "customer_amount_avg_7d",
    "customer_txn_count_30d",
    "customer_amount_sum_30d",
    "customer_amount_avg_30d",
    "amount_to_customer_avg_7d",
    "amount_to_customer_avg_30d",
    "seconds_since_previous_txn",
    "is_new_device_30d",
    "is_new_ip_30d",
    "is_new_merchant_for_customer_30d",
    "distinct_devices_1d",
    "distinct_ips_1d",
    "merchant_txn_count_1d",
    "merchant_fraud_count_1d",
    "merchant_fraud_rate_1d",
    "merchant_txn_count_7d",
    "merchant_fraud_count_7d",
    "merchant_fraud_rate_7d",
    "merchant_txn_count_30d",
    "merchant_fraud_count_30d",
    "merchant_fraud_rate_30d",
    "customer_tenure_days",
    "is_new_customer",
    "is_new_merchant",
)
CATEGORICAL_COLUMNS: tuple[str, ...] = ("transaction_type", "merchant_category")
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c not in CATEGORICAL_COLUMNS)

SEEDS_DIR = Path(__file__).resolve().parents[1] / "seeds"
# categorical column -> (seed file, its key column)
CATEGORY_SEEDS: dict[str, tuple[str, str]] = {
    "transaction_type": ("transaction_types.csv", "transaction_type"),
    "merchant_category": ("merchant_categories.csv", "merchant_category"),
}

THRESHOLD_KEY = "decision_threshold"  # run param and metric of a training run
CLASSIFIER_STEP = "classifier"
PREPROCESS_STEP = "preprocess"


@cache
def categories(column: str) -> tuple[str, ...]:
    """The fixed, sorted category list of a categorical feature, read from its dbt seed (so
    training and serving encode identically, whatever values a batch happens to contain)."""
    if column not in CATEGORY_SEEDS:
        raise KeyError(f"{column!r} is not a categorical feature ({', '.join(CATEGORY_SEEDS)})")
    file, key = CATEGORY_SEEDS[column]
    path = SEEDS_DIR / file
    with path.open(newline="") as handle:
        values = sorted({row[key].strip() for row in csv.DictReader(handle) if row[key].strip()})
    if not values:
        raise ValueError(f"seed {path} has no values in column {key!r}")
    return tuple(values)


def feature_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """The model input: ``FEATURE_COLUMNS`` in order; categoricals as pandas ``category``
    with the seed's categories (a value outside them becomes missing, NaN); everything else
    float64 (booleans 0/1). Raises ``KeyError`` naming the missing columns."""
    missing = [c for c in FEATURE_COLUMNS if c not in frame.columns]
    if missing:
        raise KeyError(f"transaction features lack columns: {', '.join(missing)}")
    out = pd.DataFrame(index=frame.index)
    for column in FEATURE_COLUMNS:
        if column in CATEGORICAL_COLUMNS:
            dtype = pd.CategoricalDtype(list(categories(column)))
            out[column] = frame[column].astype("string").astype(object).astype(dtype)
        else:
            out[column] = pd.to_numeric(frame[column].astype("float64"), errors="raise")
    return out


def classifier_of(pipeline: Any) -> Any:
    """The ``classifier`` step of a logged transaction model."""
    return pipeline.named_steps[CLASSIFIER_STEP]


def transformed(pipeline: Any, X: pd.DataFrame) -> pd.DataFrame:
    """What the classifier sees: every step but the last applied to ``X``, as a frame named
    by the steps' output feature names."""
    head = pipeline[:-1]
    values = head.transform(X)
    names = [str(n) for n in head.get_feature_names_out()]
    return pd.DataFrame(np.asarray(values, dtype="float64"), columns=names, index=X.index)


def fraud_probability(pipeline: Any, X: pd.DataFrame) -> np.ndarray:
    """P(fraud) per row of ``X`` (the positive class of ``predict_proba``)."""
    classes = list(pipeline.classes_)
    positive = next((i for i, c in enumerate(classes) if c in (1, True)), len(classes) - 1)
    return np.asarray(pipeline.predict_proba(X)[:, positive], dtype="float64")


SHAP_METHOD = "shap"  # exact TreeSHAP
PATH_METHOD = "path"  # path attribution (Saabas): the changes of the node values along the path


def contributions(pipeline: Any, X: pd.DataFrame, method: str = SHAP_METHOD) -> pd.DataFrame:
    """Per-row, per-feature contribution to the score, rows of ``X`` by ``FEATURE_COLUMNS``
    (positive = pushes towards fraud).

    LightGBM (a ``booster_``), in the model's raw log-odds units: ``method='shap'`` exact
    TreeSHAP, ``predict(..., pred_contrib=True)`` (the bias column dropped; rows sum to the
    margin minus the expected value); ``method='path'`` the path attribution of
    ``path_contributions`` (rows sum to the margin minus the trees' root values; about 100
    times faster: exact TreeSHAP measured 50-80 rows/s on 2 busy cores for 300 trees of 31
    leaves). Any other classifier: ablation on the probability (``ml.scores``: each feature
    set to the batch median of what the classifier sees, the row rescored; one pass per
    feature)."""
    if method not in (SHAP_METHOD, PATH_METHOD):
        raise ValueError(f"contribution method {method!r}: {SHAP_METHOD} or {PATH_METHOD}")
    matrix = transformed(pipeline, X)
    clf = classifier_of(pipeline)
    booster = getattr(clf, "booster_", None)
    if booster is not None:
        if method == PATH_METHOD:
            raw = path_contributions(booster, matrix.to_numpy())
        else:
            raw = np.asarray(booster.predict(matrix.to_numpy(), pred_contrib=True))[:, :-1]
        values = pd.DataFrame(raw, columns=matrix.columns, index=X.index)
    else:
        from ml.scores import ablation_contributions

        positive = _positive_index(clf)

        def score(frame: pd.DataFrame) -> np.ndarray:
            values = clf.predict_proba(frame.to_numpy())
            return np.asarray(values[:, positive], dtype="float64")

        values = ablation_contributions(score, matrix)
    return values.reindex(columns=list(FEATURE_COLUMNS), fill_value=0.0)


def _leaf_tables(booster: Any) -> list[np.ndarray]:
    """Per tree, per leaf: the contribution of each feature on the path from the root to that
    leaf (each split credits its feature with child value minus node value)."""
    model = booster.dump_model()
    n_features = booster.num_feature()
    tables: list[np.ndarray] = []
    for info in model["tree_info"]:
        root = info["tree_structure"]
        table = np.zeros((max(int(info["num_leaves"]), 1), n_features))
        # a one-leaf tree (no split; its leaf has no "leaf_index") credits nothing
        stack: list[tuple[dict[str, Any], np.ndarray]] = (
            [] if "split_feature" not in root else [(root, np.zeros(n_features))]
        )
        while stack:
            node, path = stack.pop()
            for side in ("left_child", "right_child"):
                child = node[side]
                is_leaf = "leaf_index" in child
                value = child["leaf_value"] if is_leaf else child["internal_value"]
                step = path.copy()
                step[int(node["split_feature"])] += value - node["internal_value"]
                if is_leaf:
                    table[int(child["leaf_index"])] = step
                else:
                    stack.append((child, step))
        tables.append(table)
    return tables


_LEAF_TABLES: dict[int, tuple[Any, list[np.ndarray]]] = {}


def path_contributions(booster: Any, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
    """Path attribution (Saabas, "treeinterpreter") of a LightGBM binary booster: for every
    row and tree, the leaf it falls in (``predict(pred_leaf=True)``) and the feature credits
    on that leaf's path, summed over trees. Exact for the model's margin (rows sum to it minus
    the sum of the trees' root values); unlike TreeSHAP it credits a split's feature with the
    whole change at that split, so a feature high in the trees can get more credit. The leaf
    tables are built once per booster. ``num_threads`` as LightGBM's (0: its default; 1 for
    one row, where the thread pool costs more than the work). The definition and numpy
    reference of the compiled kernel scoring uses (``ml.scoring.fast_evaluator.boosted``,
    held equal to this by tests/python/scoring/test_boosted_evaluator.py)."""
    key = id(booster)
    if key not in _LEAF_TABLES or _LEAF_TABLES[key][0] is not booster:
        _LEAF_TABLES[key] = (booster, _leaf_tables(booster))
    _, tables = _LEAF_TABLES[key]
    leaves = np.asarray(
        booster.predict(matrix, pred_leaf=True, num_threads=num_threads), dtype=np.int64
    )
    if leaves.ndim == 1:
        leaves = leaves[:, None]
    out = np.zeros((matrix.shape[0], booster.num_feature()))
    for t, table in enumerate(tables):
        out += table[leaves[:, t]]
    return out


def _positive_index(clf: Any) -> int:
    classes = list(clf.classes_)
    return next((i for i, c in enumerate(classes) if c in (1, True)), len(classes) - 1)
