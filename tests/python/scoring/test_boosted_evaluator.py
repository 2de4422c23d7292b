"""The compiled LightGBM path (ml.scoring.fast_evaluator.boosted, and the scoring rule of
ml.scoring.explanations that uses it) against LightGBM itself and
the numpy path attribution: on the project's own pipeline (ordinal-coded categoricals,
unknown categories as NaN) and on boosters with every missing type, rows exactly at, just
below and just above every threshold, tiny values LightGBM reads as 0, NaN, infinities and
category codes outside the sets (1e-9: the margin of ``predict(raw_score=True)``, the
contributions of ``ml.transaction_model.path_contributions``)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml import transaction_model as tm
from ml.scores import CLASSIFIER_KIND, flag
from ml.scoring.explanations import (
    booster_of,
    booster_scores,
    explained_contributions,
    explained_scores,
)
from ml.scoring.fast_evaluator.boosted import ZERO_THRESHOLD, FlatBooster, flat_booster
from ml.scoring.fast_evaluator.kernels import UnsupportedModelError
from ml.training.transaction_model.families import fit_pipeline
from ml.training.transaction_model.params import TransactionClassifierParams

TOLERANCE = 1e-9


def _assert_equal_to_lightgbm(booster: lgb.Booster, matrix: np.ndarray) -> None:
    margin, contrib = flat_booster(booster).margin_and_path(matrix)
    expected = booster.predict(matrix, raw_score=True)
    np.testing.assert_allclose(margin, expected, rtol=0, atol=TOLERANCE)
    reference = tm.path_contributions(booster, matrix)
    np.testing.assert_allclose(contrib, reference, rtol=0, atol=TOLERANCE)


def _features(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """A frame of the gold table's feature columns and a label that depends on them."""
    data: dict[str, object] = {c: rng.gamma(2.0, 3.0, size=n) for c in tm.NUMERIC_COLUMNS}
    for column in ("is_night", "is_weekend", "is_new_device_30d", "is_new_customer"):
        data[column] = rng.integers(0, 2, size=n).astype(float)
    for column in tm.CATEGORICAL_COLUMNS:
        values = [*tm.categories(column), "not-a-seed-value"]  # unknown: NaN
        data[column] = rng.choice(values, size=n)
    frame = pd.DataFrame(data)
    logit = (
        0.4 * frame["amount"]
        - 2.0 * frame["is_new_device_30d"]
        + 1.5 * (frame["merchant_category"] == tm.categories("merchant_category")[0])
        + rng.normal(scale=1.0, size=n)
    )
    return frame, (logit > np.quantile(logit, 0.8)).astype(int).to_numpy()


@pytest.fixture(scope="module")
def project_model() -> tuple[object, np.ndarray]:
    """The project's LightGBM pipeline (fit_pipeline: categorical splits on the ordinal
    codes) and the matrix its classifier sees for fresh rows."""
    rng = np.random.default_rng(7)
    frame, labels = _features(3_000, rng)
    params = TransactionClassifierParams(n_estimators=60, min_child_samples=10, n_jobs=1)
    pipeline = fit_pipeline(params, tm.feature_matrix(frame), labels)
    fresh, _ = _features(2_000, np.random.default_rng(8))
    matrix = tm.transformed(pipeline, tm.feature_matrix(fresh)).to_numpy()
    return pipeline, matrix


def _splits(booster: lgb.Booster) -> list[tuple[int, str, object]]:
    out = []
    stack = [info["tree_structure"] for info in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            out.append((int(node["split_feature"]), node["decision_type"], node["threshold"]))
            stack.extend((node["left_child"], node["right_child"]))
    return out


def _edge_rows(booster: lgb.Booster, base: np.ndarray) -> np.ndarray:
    """Rows of ``base`` with one feature set to a threshold, its neighbours, or a special."""
    specials = [
        0.0, -0.0, ZERO_THRESHOLD, -ZERO_THRESHOLD, 1e-36, -1e-36, 2 * ZERO_THRESHOLD,
        np.nan, np.inf, -np.inf, -1.0, -0.5, 0.5, 2.7, 31.0, 32.0, 100.0, 1e10,
    ]  # fmt: skip
    rows = []
    for i, (feature, decision, threshold) in enumerate(_splits(booster)):
        row = base[i % len(base)]
        if decision == "<=":
            t = float(threshold)
            values = [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)]
        else:
            values = [float(c) for c in str(threshold).split("||")]
        for value in values + specials[i % 3 :: 3]:
            edited = row.copy()
            edited[feature] = value
            rows.append(edited)
    return np.asarray(rows)


def test_the_project_model_has_categorical_splits_and_is_reproduced(project_model) -> None:
    pipeline, matrix = project_model
    booster = tm.classifier_of(pipeline).booster_
    decisions = {d for _, d, _ in _splits(booster)}
    assert decisions == {"<=", "=="}  # the ordinal-coded categoricals are split as categories
    assert np.isnan(matrix[:, : len(tm.CATEGORICAL_COLUMNS)]).any()  # unknown categories
    _assert_equal_to_lightgbm(booster, matrix)
    _assert_equal_to_lightgbm(booster, _edge_rows(booster, matrix))


def test_probability_is_the_pipelines(project_model) -> None:
    pipeline, matrix = project_model
    margin, _ = flat_booster(tm.classifier_of(pipeline).booster_).margin_and_path(matrix)
    proba = tm.classifier_of(pipeline).predict_proba(matrix)[:, 1]
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-margin)), proba, rtol=0, atol=TOLERANCE)


def _booster(missing: str, rng: np.random.Generator) -> lgb.Booster:
    """A booster trained on data with missing values of the kind ``missing`` (None: no
    missing values at all; Zero: zeros as missing; NaN: NaN in the numeric features)."""
    n = 2_000
    X = rng.normal(size=(n, 6))
    X[:, 5] = rng.integers(0, 40, size=n)  # a categorical with codes beyond one bitset word
    if missing != "None":
        hole = rng.random((n, 5)) < 0.15
        X[:, :5][hole] = 0.0 if missing == "Zero" else np.nan
    y = np.nan_to_num(X[:, 0]) + np.isin(X[:, 5], [3, 33, 39]) + rng.normal(size=n) > 0.5
    params = {
        "objective": "binary",
        "num_leaves": 15,
        "min_data_in_leaf": 5,
        "verbose": -1,
        "zero_as_missing": missing == "Zero",
        "use_missing": missing != "None",
        "cat_smooth": 1.0,
        "min_data_per_group": 5,
    }
    data = lgb.Dataset(X, y.astype(int), categorical_feature=[5])
    return lgb.train(params, data, num_boost_round=40)


@pytest.mark.parametrize("missing", ["None", "Zero", "NaN"])
def test_every_missing_type_at_every_threshold(missing: str) -> None:
    rng = np.random.default_rng({"None": 1, "Zero": 2, "NaN": 3}[missing])
    booster = _booster(missing, rng)
    model = booster.dump_model()
    kinds = {
        n.get("missing_type")
        for n in _nodes(model)
        if "split_feature" in n and n["decision_type"] == "<="
    }
    assert missing in kinds
    base = rng.normal(size=(50, 6))
    base[:, 5] = rng.integers(0, 40, size=50)
    base[::7, 2] = np.nan
    _assert_equal_to_lightgbm(booster, np.vstack([base, _edge_rows(booster, base)]))


def _nodes(model: dict) -> list[dict]:
    out, stack = [], [info["tree_structure"] for info in model["tree_info"]]
    while stack:
        node = stack.pop()
        out.append(node)
        if "split_feature" in node:
            stack.extend((node["left_child"], node["right_child"]))
    return out


_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 1e-36, -1e-36, ZERO_THRESHOLD, -1.0, 3.0, 33.0, 39.0, 40.0]),
    st.integers(-3, 45).map(float),
)


@pytest.fixture(scope="module")
def nan_booster() -> lgb.Booster:
    return _booster("NaN", np.random.default_rng(11))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(_VALUES, min_size=6, max_size=6), min_size=1, max_size=80))
def test_any_rows_equal_lightgbm_and_one_row_equals_the_batch(nan_booster, rows) -> None:
    matrix = np.asarray(rows, dtype=np.float64)
    _assert_equal_to_lightgbm(nan_booster, matrix)
    margin, contrib = flat_booster(nan_booster).margin_and_path(matrix)
    for i in range(0, len(matrix), 13):  # a row's numbers do not depend on its batch
        one_margin, one = flat_booster(nan_booster).margin_and_path(matrix[i : i + 1])
        assert one_margin[0] == margin[i]
        np.testing.assert_array_equal(one[0], contrib[i])


def test_parallel_and_serial_give_the_same_numbers(project_model) -> None:
    pipeline, matrix = project_model
    flat = flat_booster(tm.classifier_of(pipeline).booster_)
    parallel = flat.margin_and_path(matrix, n_threads=2)
    serial = flat.margin_and_path(matrix, n_threads=1)
    np.testing.assert_array_equal(parallel[0], serial[0])
    np.testing.assert_array_equal(parallel[1], serial[1])


def test_models_it_cannot_reproduce_are_refused() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    y = rng.integers(0, 3, size=300)
    multiclass = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(X, y), 3
    )
    with pytest.raises(UnsupportedModelError, match=r"objective|multiclass"):
        FlatBooster.from_booster(multiclass)
    regression = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(X, X[:, 0]), 3)
    with pytest.raises(UnsupportedModelError, match="objective"):
        FlatBooster.from_booster(regression)
    linear = lgb.train(
        {"objective": "binary", "linear_tree": True, "verbose": -1},
        lgb.Dataset(X, (X[:, 0] > 0).astype(int)),
        3,
    )
    with pytest.raises(UnsupportedModelError, match="linear"):
        FlatBooster.from_booster(linear)


def test_a_matrix_of_the_wrong_width_is_refused(project_model) -> None:
    pipeline, matrix = project_model
    with pytest.raises(ValueError, match="features"):
        flat_booster(tm.classifier_of(pipeline).booster_).margin_and_path(matrix[:, :-1])


# --------------------------------------------------------------------------------------------
# The rule that uses it (ml.scoring.explanations)
# --------------------------------------------------------------------------------------------


def test_explained_scores_equal_the_reference_rule(project_model) -> None:
    """Compiled probability and contributions = LightGBM's predict_proba and the numpy rule
    (exact TreeSHAP for the flagged rows, path attribution for the rest)."""
    pipeline, _ = project_model
    frame, _ = _features(1_500, np.random.default_rng(9))
    X = tm.feature_matrix(frame)
    expected_p = tm.fraud_probability(pipeline, X)
    threshold = float(np.quantile(expected_p, 0.9))
    probability, flagged, contrib = explained_scores(pipeline, X, threshold)
    np.testing.assert_allclose(probability, expected_p, rtol=0, atol=TOLERANCE)
    assert 0 < flagged.sum() < len(X)
    np.testing.assert_array_equal(flagged, flag(expected_p, threshold, CLASSIFIER_KIND))
    reference = explained_contributions(pipeline, X, flagged, compiled=False)
    assert list(contrib.columns) == list(tm.FEATURE_COLUMNS)
    np.testing.assert_allclose(contrib.to_numpy(), reference.to_numpy(), rtol=0, atol=TOLERANCE)
    compiled = explained_contributions(pipeline, X, flagged)
    np.testing.assert_allclose(compiled.to_numpy(), contrib.to_numpy(), rtol=0, atol=0)
    shap = tm.contributions(pipeline, X[flagged], method=tm.SHAP_METHOD)
    np.testing.assert_allclose(contrib[flagged].to_numpy(), shap.to_numpy(), rtol=0, atol=0)
    assert not np.allclose(contrib[~flagged].to_numpy(), 0.0)


def test_one_row_is_its_row_of_the_batch(project_model) -> None:
    """The service's one-row call gives the batch's numbers bit for bit, flagged or not."""
    pipeline, matrix = project_model
    booster = booster_of(pipeline)
    probability, flagged, contrib = booster_scores(booster, matrix, 0.3)
    assert flagged.any() and not flagged.all()
    for i in [*np.flatnonzero(flagged)[:5], *np.flatnonzero(~flagged)[:5]]:
        p, f, c = booster_scores(booster, matrix[i : i + 1], 0.3)
        assert p[0] == probability[i] and f[0] == flagged[i]
        np.testing.assert_array_equal(c[0], contrib[i])


def test_other_families_keep_their_probability_and_ablation() -> None:
    frame, labels = _features(800, np.random.default_rng(10))
    X = tm.feature_matrix(frame)
    params = TransactionClassifierParams(
        family="hist_gradient_boosting", n_estimators=20, min_child_samples=10, n_jobs=1
    )
    pipeline = fit_pipeline(params, X, labels)
    assert booster_of(pipeline) is None
    probability, flagged, contrib = explained_scores(pipeline, X, 0.5)
    np.testing.assert_array_equal(probability, tm.fraud_probability(pipeline, X))
    np.testing.assert_array_equal(flagged, probability >= 0.5)
    pd.testing.assert_frame_equal(contrib, tm.contributions(pipeline, X))


def test_the_flat_copy_is_built_once_and_dropped_with_its_booster(nan_booster) -> None:
    import gc
    import weakref

    assert flat_booster(nan_booster) is flat_booster(nan_booster)
    copy = lgb.Booster(model_str=nan_booster.model_to_string())
    dropped = weakref.ref(flat_booster(copy))
    del copy
    gc.collect()
    assert dropped() is None


def test_one_leaf_trees_credit_nothing() -> None:
    """Trees without a split (too few rows for a leaf): only their value, no credit."""
    rng = np.random.default_rng(12)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 150}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=5)
    assert {info["num_leaves"] for info in booster.dump_model()["tree_info"]} == {1}
    _assert_equal_to_lightgbm(booster, X)
    assert not flat_booster(booster).margin_and_path(X)[1].any()
