"""The candidate model families of the transaction classifier, each one scikit-learn
``Pipeline([("preprocess", ...), ("classifier", ...)])`` over ``ml.transaction_model``'s
feature matrix, and the skops types their saved form needs.

``preprocess`` is a ColumnTransformer: the two categoricals as ordinal codes over the seeds'
fixed category lists (a value outside them, or missing, becomes NaN: "missing" for every
family), numeric features passed through, categoricals first (``get_feature_names_out`` names the
columns; ``ml.transaction_model.contributions`` maps back)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from ml import registry
from ml.training.transaction_model.params import TransactionClassifierParams
from ml.transaction_model import (
    CATEGORICAL_COLUMNS,
    CLASSIFIER_STEP,
    NUMERIC_COLUMNS,
    PREPROCESS_STEP,
    categories,
)

# Beyond scikit-learn and numpy (trusted by skops by default), what each family's saved
# pipeline contains. LightGBM: the sklearn wrapper and its Booster (restored from LightGBM's
# own text model format in Booster.__setstate__, no pickle) plus the OrderedDict the wrapper
# keeps its evaluation results in. Found with skops.io.get_untrusted_types on a saved
# pipeline (tests/python/training/test_transaction_classifier.py re-checks it).
FAMILY_TRUSTED_TYPES: dict[str, tuple[str, ...]] = {
    "lightgbm": (
        *registry.SKOPS_TRUSTED_TYPES,
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
    ),
    "hist_gradient_boosting": (
        *registry.SKOPS_TRUSTED_TYPES,
        # the predictor's trees, and the input check it keeps as partial(check_array, ...)
        "functools.partial",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.utils.validation.check_array",
    ),
    "random_forest": registry.SKOPS_TRUSTED_TYPES,
}
FAMILY_REQUIREMENTS: dict[str, tuple[str, ...]] = {"lightgbm": ("lightgbm",)}


def preprocessor() -> ColumnTransformer:
    encoder = OrdinalEncoder(
        categories=[list(categories(c)) for c in CATEGORICAL_COLUMNS],
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
    )
    return ColumnTransformer(
        [
            ("categorical", encoder, list(CATEGORICAL_COLUMNS)),
            ("numeric", "passthrough", list(NUMERIC_COLUMNS)),
        ],
        verbose_feature_names_out=False,
    )


def _classifier(params: TransactionClassifierParams, n_jobs: int) -> Any:
    n_categorical = len(CATEGORICAL_COLUMNS)
    if params.family == "lightgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(
            n_estimators=params.n_estimators,
            learning_rate=params.learning_rate,
            num_leaves=params.num_leaves,
            max_depth=-1 if params.max_depth is None else params.max_depth,
            min_child_samples=params.min_child_samples,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=params.random_state,
            n_jobs=n_jobs,
            verbose=-1,
        )
    if params.family == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=params.n_estimators,
            learning_rate=params.learning_rate,
            max_leaf_nodes=params.num_leaves,
            max_depth=params.max_depth,
            min_samples_leaf=params.min_child_samples,
            categorical_features=list(range(n_categorical)),
            early_stopping=False,
            random_state=params.random_state,
        )
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=min(params.n_estimators, 200),
        max_depth=params.max_depth,
        min_samples_leaf=max(1, params.min_child_samples // 10),
        class_weight="balanced_subsample",
        random_state=params.random_state,
        n_jobs=n_jobs,
    )


def build_pipeline(params: TransactionClassifierParams) -> Pipeline:
    return Pipeline(
        [
            (PREPROCESS_STEP, preprocessor()),
            (CLASSIFIER_STEP, _classifier(params, params.n_jobs)),
        ]
    )


def fit_pipeline(params: TransactionClassifierParams, X: Any, y: np.ndarray) -> Pipeline:
    """Fit the family's pipeline; LightGBM is told which columns are categorical (the first
    ones of the preprocessed matrix). The fitted model predicts single-threaded (scoring
    parallelises itself)."""
    pipeline = build_pipeline(params)
    fit_params: dict[str, Any] = {}
    if params.family == "lightgbm":
        fit_params["classifier__categorical_feature"] = list(range(len(CATEGORICAL_COLUMNS)))
    pipeline.fit(X, np.asarray(y, dtype=int), **fit_params)
    classifier = pipeline.named_steps[CLASSIFIER_STEP]
    if "n_jobs" in classifier.get_params():
        classifier.set_params(n_jobs=1)
    return pipeline
