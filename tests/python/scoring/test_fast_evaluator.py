"""ml.scoring.fast_evaluator: the compiled evaluator gives scikit-learn's numbers (within TOLERANCE,
in practice bit for bit) on random data and on the edge cases: constant features, single rows,
inputs on float32 rounding boundaries of the thresholds, NaN, feature subsampling, the
tail of deep trees, serial and parallel kernels and threads, DataFrames, and the duck
typing ml.scoring relies on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    IsolationForest,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from ml import scores
from ml.scoring.fast_evaluator import forest, kernels
from ml.scoring.fast_evaluator.kernels import TOLERANCE, MismatchError, UnsupportedModelError
from ml.scoring.fast_evaluator.scorer import (
    ForestClassifierScorer,
    IsolationForestScorer,
    compare,
    compile_pipeline,
    verify,
)

N_FEATURES = 16


def _data(n: int, seed: int = 0, p: int = N_FEATURES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.01, 1000, p)
    shift = rng.uniform(-500, 500, p)
    x = rng.lognormal(0, 1, size=(n, p)) * scale + shift
    x[:, 0] = np.round(x[:, 0])  # a count-like column with many ties
    return x


def _labels(x: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = (x[:, 1] - x[:, 1].mean()) / x[:, 1].std() + rng.normal(size=len(x))
    return (z > 1.5).astype(int)


def _iforest(**kwargs: object) -> Pipeline:
    params = {"n_estimators": 60, "contamination": 0.01, "random_state": 42, **kwargs}
    return Pipeline([("scaler", StandardScaler()), ("model", IsolationForest(**params))])


def _rforest(**kwargs: object) -> Pipeline:
    params = {"n_estimators": 40, "max_depth": 10, "random_state": 42, **kwargs}
    return Pipeline([("scaler", StandardScaler()), ("model", RandomForestClassifier(**params))])


def _assert_if_equal(scorer: object, model: object, x: object) -> None:
    assert isinstance(scorer, IsolationForestScorer)
    fast, ref = scorer.score_samples(x), model.score_samples(x)  # type: ignore[attr-defined]
    assert np.max(np.abs(fast - ref), initial=0.0) <= TOLERANCE
    np.testing.assert_array_equal(fast, ref)  # bit for bit in practice
    np.testing.assert_array_equal(
        scorer.decision_function(x),
        model.decision_function(x),  # type: ignore[attr-defined]
    )
    np.testing.assert_array_equal(scorer.predict(x), model.predict(x))  # type: ignore[attr-defined]


def _assert_rf_equal(scorer: object, model: object, x: object) -> None:
    assert isinstance(scorer, ForestClassifierScorer)
    fast, ref = scorer.predict_proba(x), model.predict_proba(x)  # type: ignore[attr-defined]
    assert fast.shape == ref.shape
    assert np.max(np.abs(fast - ref), initial=0.0) <= TOLERANCE
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(scorer.predict(x), model.predict(x))  # type: ignore[attr-defined]


# ------------------------------------------------------------------ random data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_isolation_forest_pipeline_equals_sklearn_on_random_data(seed: int) -> None:
    x = _data(3000, seed)
    model = _iforest(random_state=seed).fit(x)
    scorer = compile_pipeline(model)
    _assert_if_equal(scorer, model, _data(2000, seed + 10))
    _assert_if_equal(scorer, model, x)


def test_isolation_forest_variants_feature_subsampling_bootstrap_and_max_samples() -> None:
    x = _data(1500, 3)
    for kwargs in (
        {"max_features": 0.5},
        {"max_features": 3, "bootstrap": True},
        {"max_samples": 37},
        {"max_samples": 1.0, "n_estimators": 10},
        {"contamination": "auto"},
    ):
        model = _iforest(**kwargs).fit(x)
        _assert_if_equal(compile_pipeline(model), model, _data(700, 4))


def test_bare_isolation_forest_without_pipeline() -> None:
    x = _data(1000, 5)
    model = IsolationForest(n_estimators=30, random_state=0).fit(x)
    _assert_if_equal(compile_pipeline(model), model, _data(500, 6))


@pytest.mark.parametrize("max_depth", [3, 10, None])
def test_random_forest_pipeline_equals_sklearn(max_depth: int | None) -> None:
    x = _data(2500, 7)
    model = _rforest(max_depth=max_depth, class_weight="balanced", min_samples_leaf=2).fit(
        x, _labels(x)
    )
    scorer = compile_pipeline(model)
    if max_depth is None:
        assert scorer.forest.max_depth > 10
    _assert_rf_equal(scorer, model, _data(1500, 8))


def test_multiclass_and_extra_trees() -> None:
    x = _data(1500, 9)
    y = np.digitize(x[:, 2], np.quantile(x[:, 2], [0.3, 0.7]))
    for estimator in (
        RandomForestClassifier(n_estimators=25, random_state=0),
        ExtraTreesClassifier(n_estimators=25, random_state=0, max_depth=12),
    ):
        model = Pipeline([("scaler", StandardScaler()), ("model", estimator)]).fit(x, y)
        _assert_rf_equal(compile_pipeline(model), model, _data(800, 10))


def test_string_class_labels_predict_the_label() -> None:
    x = _data(800, 11)
    y = np.where(_labels(x) == 1, "fraud", "ok")
    model = _rforest(n_estimators=15).fit(x, y)
    scorer = compile_pipeline(model)
    np.testing.assert_array_equal(scorer.predict(x), model.predict(x))
    assert list(scorer.classes_) == ["fraud", "ok"]


# ------------------------------------------------------------------ edge cases


def test_constant_features_give_single_leaf_trees() -> None:
    x = np.full((300, 4), 7.5)
    model = _iforest(n_estimators=20).fit(x)
    scorer = compile_pipeline(model)
    assert scorer.forest.max_depth == 0
    probe = np.vstack([x[:5], np.array([[1.0, 2.0, 3.0, 4.0]])])
    _assert_if_equal(scorer, model, probe)


def test_some_constant_columns() -> None:
    x = _data(1200, 12)
    x[:, 3] = 1.0
    x[:, 9] = -4.0
    model = _iforest().fit(x)
    probe = _data(400, 13)
    _assert_if_equal(compile_pipeline(model), model, probe)
    rf = _rforest().fit(x, _labels(x))
    _assert_rf_equal(compile_pipeline(rf), rf, probe)


def test_single_row_as_1d_and_2d() -> None:
    x = _data(1000, 14)
    model = _iforest().fit(x)
    scorer = compile_pipeline(model)
    for row in x[:25]:
        ref = model.score_samples(row.reshape(1, -1))
        np.testing.assert_array_equal(scorer.score_samples(row), ref)
        np.testing.assert_array_equal(scorer.score_samples(row.reshape(1, -1)), ref)
    rf = _rforest().fit(x, _labels(x))
    rf_scorer = compile_pipeline(rf)
    for row in x[:25]:
        np.testing.assert_array_equal(
            rf_scorer.predict_proba(row), rf.predict_proba(row.reshape(1, -1))
        )


def test_empty_batch() -> None:
    x = _data(500, 15)
    model = _iforest().fit(x)
    scorer = compile_pipeline(model)
    assert scorer.score_samples(np.empty((0, N_FEATURES))).shape == (0,)
    assert scorer.predict(np.empty((0, N_FEATURES))).shape == (0,)
    rf = _rforest(n_estimators=5).fit(x, _labels(x))
    assert compile_pipeline(rf).predict_proba(np.empty((0, N_FEATURES))).shape == (0, 2)


def _boundary_probes(model: object, n_features: int, rng: np.random.Generator) -> np.ndarray:
    """Rows whose every feature sits on, or one float64/float32 step around, a threshold."""
    thresholds: list[list[float]] = [[] for _ in range(n_features)]
    for tree in model.estimators_:  # type: ignore[attr-defined]
        t = tree.tree_
        for f, thr in zip(t.feature, t.threshold, strict=True):
            if f >= 0:
                thresholds[f].append(float(thr))
    candidates: list[np.ndarray] = []
    for values in thresholds:
        v = np.asarray(values or [0.0])
        f32 = v.astype(np.float32)
        around = [
            v,
            np.nextafter(v, np.inf),
            np.nextafter(v, -np.inf),
            f32.astype(np.float64),
            np.nextafter(f32, np.float32(np.inf)).astype(np.float64),
            np.nextafter(f32, np.float32(-np.inf)).astype(np.float64),
        ]
        candidates.append(np.concatenate(around))
    rows = np.empty((4000, n_features))
    for j, c in enumerate(candidates):
        rows[:, j] = rng.choice(c, size=len(rows))
    return rows


def test_inputs_on_float32_threshold_boundaries() -> None:
    """scikit-learn compares float32(x) with float64 thresholds; values one ulp around each
    threshold (in float64 and in float32) must branch exactly as in scikit-learn."""
    rng = np.random.default_rng(16)
    x = _data(2000, 16, p=6)
    forest = IsolationForest(n_estimators=40, random_state=1).fit(x)
    probes = _boundary_probes(forest, 6, rng)
    _assert_if_equal(compile_pipeline(forest), forest, probes)
    rf = RandomForestClassifier(n_estimators=30, random_state=2).fit(x, _labels(x))
    _assert_rf_equal(compile_pipeline(rf), rf, _boundary_probes(rf, 6, rng))


def test_float32_input_and_integer_input() -> None:
    x = _data(1200, 17)
    model = _iforest().fit(x)
    scorer = compile_pipeline(model)
    _assert_if_equal(scorer, model, x[:300].astype(np.float32))
    _assert_if_equal(scorer, model, np.round(x[:300]).astype(np.int64))


def test_nan_follows_missing_go_to_left() -> None:
    x = _data(1500, 18)
    probe = _data(600, 19)
    probe[np.random.default_rng(0).random(probe.shape) < 0.15] = np.nan
    model = _iforest().fit(x)
    _assert_if_equal(compile_pipeline(model), model, probe)
    subsampled = _iforest(max_features=0.5).fit(x)  # NaN in the features a tree does not use
    _assert_if_equal(compile_pipeline(subsampled), subsampled, probe)
    y = _labels(x)
    x_missing = x.copy()
    x_missing[np.random.default_rng(1).random(x.shape) < 0.05] = np.nan
    rf = _rforest(n_estimators=20, max_depth=None).fit(x_missing, y)
    _assert_rf_equal(compile_pipeline(rf), rf, probe)


def test_infinity_is_rejected_like_sklearn() -> None:
    x = _data(500, 20)
    model = _iforest().fit(x)
    probe = x[:3].copy()
    probe[1, 2] = np.inf
    with pytest.raises(ValueError):
        model.score_samples(probe)
    with pytest.raises(ValueError, match="infinity"):
        compile_pipeline(model).score_samples(probe)


def test_wrong_number_of_features() -> None:
    model = _iforest().fit(_data(300, 21))
    with pytest.raises(ValueError, match="features"):
        compile_pipeline(model).score_samples(np.zeros((2, N_FEATURES - 1)))
    with pytest.raises(ValueError, match="features"):
        compile_pipeline(model).score_samples(np.zeros(N_FEATURES + 1))


# ------------------------------------------------------------------ kernels, tails, threads


@pytest.mark.parametrize("block_bytes", [None, 4 * N_FEATURES * 20])
def test_serial_and_parallel_kernels_and_threads_give_identical_results(
    block_bytes: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 or 2 threads, serial or parallel kernel, one block or many (24-row blocks), batch sizes
    that are not a multiple of the 8-row groups or of the blocks: the same bits (a row is always
    summed by one thread, in tree order)."""
    if block_bytes is not None:
        monkeypatch.setattr(forest, "BLOCK_BYTES", block_bytes)
    x = _data(2000, 22)
    probe = _data(3001, 23)
    model = _iforest(n_estimators=50).fit(x)
    reference = model.score_samples(probe)
    results = []
    for kwargs in (
        {"n_threads": 1},
        {"n_threads": 2},
        {"n_threads": 2, "serial_rows": 1},
        {"n_threads": 3, "serial_rows": 100},  # capped at numba's pool size
    ):
        scorer = compile_pipeline(model, **kwargs)  # type: ignore[arg-type]
        assert 1 <= scorer.n_threads <= max(1, kernels.max_threads())
        for rows in (probe, probe[:1], probe[:3], probe[:517]):
            results.append(scorer.score_samples(rows))
            np.testing.assert_array_equal(results[-1], reference[: len(rows)])
    rf = _rforest(max_depth=None, n_estimators=30).fit(x, _labels(x))
    reference = rf.predict_proba(probe)
    one = compile_pipeline(rf, n_threads=1).predict_proba(probe)
    two = compile_pipeline(rf, n_threads=2, serial_rows=1).predict_proba(probe)
    np.testing.assert_array_equal(one, reference)
    np.testing.assert_array_equal(two, reference)


@pytest.mark.parametrize("tail_cost", [0.0, 1e9])
def test_tail_and_fixed_levels_give_identical_results(
    tail_cost: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tail cost 0: every tree is walked in the tail from the root; huge: every row walks each
    tree's full depth in step (leaves point to themselves)."""
    monkeypatch.setattr(forest, "TAIL_STEP_COST", tail_cost)
    x = _data(2000, 40)
    probe = _data(1203, 41)
    probe[::7, 3] = np.nan
    model = _iforest(n_estimators=30, max_features=0.7).fit(x)
    scorer = compile_pipeline(model, n_threads=2, serial_rows=64)
    assert bool(scorer.forest.tails.all()) == (tail_cost == 0.0)
    _assert_if_equal(scorer, model, probe)
    rf = _rforest(max_depth=None, n_estimators=20).fit(x, _labels(x))
    rf_scorer = compile_pipeline(rf, n_threads=2, serial_rows=64)
    assert rf_scorer.forest.tails.any() == (tail_cost == 0.0)
    _assert_rf_equal(rf_scorer, rf, probe)


def test_deep_trees_get_a_tail_at_the_default_cost() -> None:
    x = _data(3000, 42)
    rf = _rforest(max_depth=None, n_estimators=20).fit(x, _labels(x))
    scorer = compile_pipeline(rf)
    assert scorer.forest.tails.any()
    assert (scorer.forest.levels <= [e.tree_.max_depth for e in rf[-1].estimators_]).all()
    _assert_rf_equal(scorer, rf, _data(1000, 43))
    shallow = compile_pipeline(_iforest().fit(x))  # isolation trees: full depth in step
    assert not shallow.forest.tails.any()


def test_compile_warms_up_and_describes() -> None:
    model = _iforest(n_estimators=10).fit(_data(500, 44))
    scorer = compile_pipeline(model)
    info = scorer.describe()
    assert info["engine"].startswith("numba")
    assert info["trees"] == 10
    assert info["jit_seconds"] > 0.0
    assert compile_pipeline(model, warm_up=False).describe()["jit_seconds"] == 0.0


def test_concurrent_callers_share_the_scorer() -> None:
    from concurrent.futures import ThreadPoolExecutor

    x = _data(1500, 24)
    model = _iforest().fit(x)
    scorer = compile_pipeline(model, n_threads=2, serial_rows=64)
    batches = [_data(500, 100 + i) for i in range(6)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(scorer.score_samples, batches))
    for batch, result in zip(batches, results, strict=True):
        np.testing.assert_array_equal(result, model.score_samples(batch))


# ------------------------------------------------------------------ pipelines and frames


def test_dataframe_with_feature_names_any_column_order() -> None:
    columns = [f"f{i}" for i in range(N_FEATURES)]
    x = pd.DataFrame(_data(1000, 25), columns=columns)
    model = _iforest().fit(x)
    scorer = compile_pipeline(model)
    probe = pd.DataFrame(_data(300, 26), columns=columns)
    _assert_if_equal(scorer, model, probe)
    shuffled = probe[columns[::-1]]
    np.testing.assert_array_equal(scorer.score_samples(shuffled), model.score_samples(probe))
    with pytest.raises(ValueError, match="missing feature"):
        scorer.score_samples(probe.drop(columns=["f3"]))


def test_imputer_step_and_imblearn_sampler_step() -> None:
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import Pipeline as ImbPipeline

    x = _data(1200, 27)
    y = _labels(x)
    x_missing = x.copy()
    x_missing[::17, 4] = np.nan
    model = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scaler", StandardScaler()),
            ("model", IsolationForest(n_estimators=30, random_state=0)),
        ]
    ).fit(x_missing)
    _assert_if_equal(compile_pipeline(model), model, x_missing[:400])
    imb = ImbPipeline(
        [
            ("scaler", StandardScaler()),
            ("smote", SMOTE(random_state=0)),
            ("model", RandomForestClassifier(n_estimators=20, random_state=0)),
        ]
    ).fit(x, y)
    _assert_rf_equal(compile_pipeline(imb), imb, _data(500, 28))


def test_unsupported_models_raise() -> None:
    x = _data(300, 29)
    y = _labels(x)
    with pytest.raises(UnsupportedModelError):
        compile_pipeline(GradientBoostingClassifier(n_estimators=5).fit(x, y))
    with pytest.raises(UnsupportedModelError):
        compile_pipeline(
            Pipeline([("s", MinMaxScaler()), ("m", IsolationForest(n_estimators=5))]).fit(x)
        )
    with pytest.raises(UnsupportedModelError):
        compile_pipeline(IsolationForest())  # not fitted


def test_scorer_is_a_drop_in_for_ml_scoring() -> None:
    """ml.scoring.score_function / decision_threshold accept the scorer in place of the
    pipeline (model kind by method presence, classes_, pipeline[-1].offset_)."""
    x = pd.DataFrame(_data(1200, 30), columns=[f"f{i}" for i in range(N_FEATURES)])
    iforest = _iforest().fit(x)
    fast_if = compile_pipeline(iforest)
    assert scores.model_kind(fast_if) == scores.ISOLATION_FOREST_KIND
    assert scores.decision_threshold(fast_if) == scores.decision_threshold(iforest)
    np.testing.assert_array_equal(
        scores.score_function(fast_if)(x), scores.score_function(iforest)(x)
    )
    rf = _rforest().fit(x, _labels(x.to_numpy()))
    fast_rf = compile_pipeline(rf)
    assert scores.model_kind(fast_rf) == scores.CLASSIFIER_KIND
    np.testing.assert_array_equal(scores.score_function(fast_rf)(x), scores.score_function(rf)(x))


def test_verify_reports_and_detects_a_mismatch() -> None:
    x = _data(800, 31)
    model = _iforest().fit(x)
    scorer = compile_pipeline(model)
    diffs = verify(scorer, model, x)
    assert diffs["score_samples"] == 0.0
    assert diffs["predict_mismatch_share"] == 0.0
    scorer.forest.values[:] += 0.5  # corrupt the leaf values
    assert compare(scorer, model, x)["score_samples"] > TOLERANCE
    with pytest.raises(MismatchError):
        verify(scorer, model, x)
