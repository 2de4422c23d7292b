"""Batch scoring for ``gold.fraud_scores``: model selection, scores, confidence, risk bands and
per-customer reason codes.

Score definitions (every model writes them on the same 0-1 scale, higher = more suspicious):

``anomaly_score``
    IsolationForest: ``-pipeline.score_samples(X)``, i.e. the anomaly score of Liu et al.
    ``s = 2 ** (-E[h(x)] / c(n))`` in (0, 1]: near 1 = isolated in few splits (anomalous),
    well below 0.5 = normal. RandomForest: the predicted fraud probability.
``decision_threshold``
    The score above which a customer is flagged (``is_anomaly``). IsolationForest: the
    model's own ``-offset_`` (set by ``contamination`` at training; ``is_anomaly`` equals
    ``pipeline.predict(X) == -1``). RandomForest: the ``decision_threshold`` parameter of the
    training run (default 0.5; flagged when ``probability >= threshold``).
``confidence``
    How far the score is from the decision threshold, as a share of the farthest it could be
    on that side of the threshold (scores live in [0, 1])::

        flagged:      (score - threshold) / (1 - threshold)
        not flagged:  (threshold - score) / threshold

    0 = on the decision boundary (a coin flip), 1 = as far from it as the score can go.
    For a RandomForest with threshold 0.5 this is ``|2p - 1|``.
``risk_band``
    From ``is_anomaly`` and ``confidence`` (``RISK_BAND_THRESHOLDS``)::

        critical  flagged, confidence >= 0.5   (IF: past the halfway point between threshold
                                                and 1; RF at 0.5: p >= 0.75)
        high      flagged, confidence <  0.5
        medium    not flagged, confidence < 0.2 (a near miss: IF score >= 0.8 x threshold;
                                                 RF at 0.5: p >= 0.4)
        low       not flagged, confidence >= 0.2

Reason codes: see ``ablation_contributions`` and ``reason_codes``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ml import registry
from ml.features import ID_COLUMN, INTEGER_FEATURES, feature_matrix

logger = logging.getLogger(__name__)

ScoreFunction = Callable[[pd.DataFrame], np.ndarray]

ISOLATION_FOREST_KIND = "isolation_forest"
CLASSIFIER_KIND = "classifier"

SELECTION_ALIAS = "alias"
SELECTION_PINNED = "pinned_version"
SELECTION_FALLBACK = "fallback_latest_unvalidated"

RISK_BANDS: tuple[str, ...] = ("low", "medium", "high", "critical")
# flagged with confidence >= critical -> critical; not flagged with confidence < medium -> medium
RISK_BAND_THRESHOLDS: dict[str, float] = {"critical": 0.5, "medium": 0.2}

DEFAULT_CLASSIFIER_THRESHOLD = 0.5
N_REASONS = 3
FAST_VERIFY_ROWS = 1000  # rows on which the compiled evaluator is checked against scikit-learn

SCORES_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "anomaly_score",
    "is_anomaly",
    "fraud_probability",
    "confidence",
    "risk_band",
    "decision_threshold",
    "model_name",
    "model_version",
    "model_run_id",
    "model_alias",
    "selection",
    "scored_at",
    "scoring_batch_id",
    "reason_1",
    "reason_1_detail",
    "reason_2",
    "reason_2_detail",
    "reason_3",
    "reason_3_detail",
)


class ModelResolutionError(RuntimeError):
    """No usable model: registry unreachable, alias or version missing, or no fallback."""


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------


def model_kind(pipeline: Any) -> str:
    """``'isolation_forest'`` for a pipeline ending in an outlier detector with
    ``score_samples``, ``'classifier'`` for one with ``predict_proba``."""
    if hasattr(pipeline, "predict_proba"):
        return CLASSIFIER_KIND
    if hasattr(pipeline, "score_samples"):
        return ISOLATION_FOREST_KIND
    raise TypeError(f"{type(pipeline).__name__} has neither predict_proba nor score_samples")


def score_function(pipeline: Any) -> ScoreFunction:
    """The model's anomaly score as a function of the feature frame (higher = more anomalous).

    IsolationForest: ``-score_samples`` (in (0, 1]); classifier: P(fraud)."""
    if model_kind(pipeline) == ISOLATION_FOREST_KIND:
        return lambda X: -np.asarray(pipeline.score_samples(X), dtype="float64")
    classes = list(pipeline.classes_)
    positive = next((i for i, c in enumerate(classes) if c in (1, True)), len(classes) - 1)
    return lambda X: np.asarray(pipeline.predict_proba(X)[:, positive], dtype="float64")


def decision_threshold(pipeline: Any, classifier_threshold: float | None = None) -> float:
    """Threshold on the anomaly score: IsolationForest ``-offset_``; classifier the given
    threshold (default 0.5)."""
    if model_kind(pipeline) == ISOLATION_FOREST_KIND:
        return float(-pipeline[-1].offset_)
    if classifier_threshold is None:
        return DEFAULT_CLASSIFIER_THRESHOLD
    return float(classifier_threshold)


def flag(scores: np.ndarray, threshold: float, kind: str) -> np.ndarray:
    """``is_anomaly``: IsolationForest ``score > threshold`` (exactly ``predict == -1``);
    classifier ``probability >= threshold``."""
    if kind == ISOLATION_FOREST_KIND:
        return scores > threshold
    return scores >= threshold


def confidence(scores: np.ndarray, threshold: float, flagged: np.ndarray) -> np.ndarray:
    """Distance from the decision threshold over the largest possible distance on that side
    (scores in [0, 1]); 0 on the boundary, 1 at the extreme. See the module docstring."""
    scores = np.asarray(scores, dtype="float64")
    above = (scores - threshold) / max(1.0 - threshold, 1e-12)
    below = (threshold - scores) / max(threshold, 1e-12)
    return np.clip(np.where(flagged, above, below), 0.0, 1.0)


def risk_bands(
    flagged: np.ndarray,
    conf: np.ndarray,
    thresholds: dict[str, float] | None = None,
) -> np.ndarray:
    """'low' / 'medium' / 'high' / 'critical' from ``is_anomaly`` and ``confidence``."""
    limits = {**RISK_BAND_THRESHOLDS, **(thresholds or {})}
    flagged = np.asarray(flagged, dtype=bool)
    conf = np.asarray(conf, dtype="float64")
    return np.select(
        [flagged & (conf >= limits["critical"]), flagged, conf < limits["medium"]],
        ["critical", "high", "medium"],
        default="low",
    ).astype(object)


# ---------------------------------------------------------------------------------------------
# Reason codes
# ---------------------------------------------------------------------------------------------


def ablation_contributions(
    score_fn: ScoreFunction,
    X: pd.DataFrame,
    reference: pd.Series | None = None,
    baseline: np.ndarray | None = None,
    max_workers: int | None = None,
) -> pd.DataFrame:
    """Per-customer, per-feature contribution to the anomaly score, by ablation.

    For each feature, the feature is replaced by the population median (``reference``;
    default: the median of ``X``, i.e. of every customer scored in the batch) with all other
    features kept, and the customer is rescored. The contribution is how much of the
    anomaly score that replacement removes::

        contribution[i, f] = score(x_i) - score(x_i with x_if := median_f)

    Positive = the feature's actual value pushes the customer towards anomalous; negative =
    it makes the customer look more normal; 0 = the value is the median (no rescoring needed).
    The method asks the model itself (no surrogate), works for any model that returns a
    score, and costs one batch rescoring per feature: 16 vectorised passes, run in threads
    (scikit-learn's tree code releases the GIL). Interactions are not split between features:
    each contribution is a "what if this one feature were typical" effect.
    """
    X = X.astype("float64")
    ref = (X.median() if reference is None else reference.reindex(X.columns)).to_numpy()
    base = score_fn(X) if baseline is None else np.asarray(baseline, dtype="float64")
    values = X.to_numpy()
    out = np.zeros_like(values)
    columns = list(X.columns)

    def ablate(j: int) -> tuple[int, np.ndarray, np.ndarray]:
        rows = np.flatnonzero(values[:, j] != ref[j])
        if rows.size == 0:
            return j, rows, np.empty(0)
        changed = values[rows].copy()
        changed[:, j] = ref[j]
        return j, rows, base[rows] - score_fn(pd.DataFrame(changed, columns=columns))

    workers = max_workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for j, rows, contribution in pool.map(ablate, range(len(columns))):
            out[rows, j] = contribution
    return pd.DataFrame(out, columns=columns, index=X.index)


def percentile_ranks(X: pd.DataFrame) -> pd.DataFrame:
    """Mid-rank percentile (0-100) of every value within its column (ties share a rank)."""
    values = X.to_numpy(dtype="float64")
    n = values.shape[0]
    out = np.empty_like(values)
    for j in range(values.shape[1]):
        column = np.sort(values[:, j])
        below = np.searchsorted(column, values[:, j], side="left")
        at_or_below = np.searchsorted(column, values[:, j], side="right")
        out[:, j] = 100.0 * (below + at_or_below) / (2.0 * max(n, 1))
    return pd.DataFrame(out, columns=X.columns, index=X.index)


def _format_value(feature: str, value: float) -> str:
    return f"{value:,.0f}" if feature in INTEGER_FEATURES else f"{value:,.2f}"


def _ordinal(percentile: float) -> str:
    rounded = round(percentile, 1)
    if float(rounded).is_integer():
        whole = int(rounded)
        suffix = (
            "th" if 10 <= whole % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(whole % 10, "th")
        )
        return f"{whole}{suffix}"
    return f"{rounded:.1f}th"


def format_reason_detail(feature: str, value: float, median: float, percentile: float) -> str:
    """``"max_transaction_amount = 4,950.00 vs population median 120.00 (99.7th percentile)"``;
    counts and days are shown without decimals."""
    return (
        f"{feature} = {_format_value(feature, value)} vs population median "
        f"{_format_value(feature, median)} ({_ordinal(percentile)} percentile)"
    )


def reason_codes(
    contributions: pd.DataFrame,
    X: pd.DataFrame,
    reference: pd.Series | None = None,
    top_k: int = N_REASONS,
    min_contribution: float = 1e-9,
) -> pd.DataFrame:
    """The ``top_k`` features with the largest positive ablation contribution per customer.

    Columns ``reason_1`` .. ``reason_<k>`` (feature name) and ``reason_<k>_detail`` (value,
    population median, percentile). A customer with fewer than ``top_k`` features pushing it
    towards anomalous gets nulls for the rest (ties: the earlier feature in FEATURE_COLUMNS).
    """
    columns = list(contributions.columns)
    names_out = [f"reason_{k}{s}" for k in range(1, top_k + 1) for s in ("", "_detail")]
    if len(X) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in names_out}, index=X.index)
    medians = (X.median() if reference is None else reference.reindex(columns)).to_numpy()
    contrib = contributions.to_numpy(dtype="float64")
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :top_k]
    top_values = np.take_along_axis(contrib, order, axis=1)
    values = X[columns].to_numpy(dtype="float64")
    pct = percentile_ranks(X[columns]).to_numpy()
    rows = np.arange(len(X))
    out: dict[str, Any] = {}
    for k in range(top_k):
        j = order[:, k]
        valid = top_values[:, k] > min_contribution
        names = np.array(columns, dtype=object)[j]
        v = values[rows, j]
        p = pct[rows, j]
        details = [
            format_reason_detail(name, val, medians[jj], perc) if ok else None
            for name, val, jj, perc, ok in zip(names, v, j, p, valid, strict=True)
        ]
        out[f"reason_{k + 1}"] = [
            name if ok else None for name, ok in zip(names, valid, strict=True)
        ]
        out[f"reason_{k + 1}_detail"] = details
    return pd.DataFrame(out, index=X.index)[names_out]


# ---------------------------------------------------------------------------------------------
# Model resolution
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringSettings:
    """Which model ``gold.fraud_scores`` uses (dbt vars of the same names, see the YAML).

    ``model_names``: tried in order; the first with ``alias`` wins.
    ``pinned_version``: score with exactly this version of the single name in ``model_names``.
    ``fallback_targets``: dbt targets on which, when no model has the alias, the LATEST
    isolation-forest version is used (selection 'fallback_latest_unvalidated', loud warning);
    on any other target that situation is an error.
    """

    model_names: tuple[str, ...] = registry.SCORING_MODEL_NAMES
    alias: str = registry.CHAMPION_ALIAS
    pinned_version: int | None = None
    fallback_targets: tuple[str, ...] = ("local", "test")
    target: str = "local"
    fallback_model_name: str = registry.ISOLATION_FOREST_MODEL
    tracking_uri: str | None = None
    registry_uri: str | None = None

    @classmethod
    def from_mapping(cls, values: dict[str, Any], target: str) -> ScoringSettings:
        """From dbt vars (None / missing = default). Lists may be given as a comma string;
        model names may be short (``random_forest``, ``isolation_forest``)."""

        def names(value: Any) -> tuple[str, ...] | None:
            if value is None:
                return None
            if isinstance(value, str):
                value = value.split(",")
            return tuple(str(v).strip() for v in value if str(v).strip())

        kwargs: dict[str, Any] = {"target": target}
        if (model_names := names(values.get("scoring_model_names"))) is not None:
            kwargs["model_names"] = tuple(registry.resolve_model_name(n) for n in model_names)
        if values.get("scoring_alias"):
            kwargs["alias"] = str(values["scoring_alias"])
        if values.get("scoring_model_version") not in (None, ""):
            kwargs["pinned_version"] = int(values["scoring_model_version"])
        if (fallback := names(values.get("unvalidated_fallback_targets"))) is not None:
            kwargs["fallback_targets"] = fallback
        kwargs["tracking_uri"] = values.get("mlflow_tracking_uri") or None
        kwargs["registry_uri"] = values.get("mlflow_registry_uri") or None
        return cls(**kwargs)


@dataclass(frozen=True)
class ResolvedModel:
    """A registry model version chosen for scoring."""

    name: str
    version: int
    run_id: str | None
    alias: str | None
    selection: str


def _registry_error(what: str, exc: Exception) -> ModelResolutionError:
    return ModelResolutionError(
        f"Could not query the MLflow model registry for {what}: {exc}. "
        "Check var mlflow_registry_uri / MLFLOW_REGISTRY_URI / FRAUD_MLFLOW_DIR. "
        "gold.fraud_scores was not rebuilt; the previous table is unchanged."
    )


def resolve_scoring_model(settings: ScoringSettings, client: Any | None = None) -> ResolvedModel:
    """Pick the model version to score with (see ``ScoringSettings``).

    Raises ``ModelResolutionError`` naming the model(s) and alias/version when the registry is
    unreachable, a pinned version does not exist, or no model has the alias on a target that
    is not in ``fallback_targets`` (or the fallback model has no version at all).
    """
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient()
    if not settings.model_names:
        raise ModelResolutionError("var scoring_model_names is empty: no model to score with")

    if settings.pinned_version is not None:
        if len(settings.model_names) != 1:
            raise ModelResolutionError(
                f"scoring_model_version={settings.pinned_version} pins a version of ONE model, "
                f"but scoring_model_names lists {len(settings.model_names)}: "
                f"{', '.join(settings.model_names)}. Set scoring_model_names to one name."
            )
        name = settings.model_names[0]
        try:
            mv = client.get_model_version(name, str(settings.pinned_version))
        except Exception as exc:
            if getattr(exc, "error_code", None) in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}:
                raise ModelResolutionError(
                    f"Model version {name} version {settings.pinned_version} "
                    "(var scoring_model_version) does not exist in the registry. "
                    "gold.fraud_scores was not rebuilt; the previous table is unchanged."
                ) from exc
            raise _registry_error(f"{name} version {settings.pinned_version}", exc) from exc
        return ResolvedModel(name, int(mv.version), mv.run_id, None, SELECTION_PINNED)

    for name in settings.model_names:
        try:
            mv = registry.version_by_alias(name, settings.alias, client)
        except Exception as exc:
            raise _registry_error(f"{name}@{settings.alias}", exc) from exc
        if mv is not None:
            return ResolvedModel(name, int(mv.version), mv.run_id, settings.alias, SELECTION_ALIAS)

    tried = ", ".join(settings.model_names)
    if settings.target not in settings.fallback_targets:
        raise ModelResolutionError(
            f"No model has alias '{settings.alias}' (tried {tried}) and target "
            f"'{settings.target}' is not in var unvalidated_fallback_targets "
            f"{list(settings.fallback_targets)}. Promote a validated version "
            f"(set alias '{settings.alias}'), or pin one with var scoring_model_version. "
            "gold.fraud_scores was not rebuilt; the previous table is unchanged."
        )
    name = settings.fallback_model_name
    try:
        mv = registry.latest_version(name, client)
    except Exception as exc:
        raise _registry_error(f"the latest version of {name}", exc) from exc
    if mv is None:
        raise ModelResolutionError(
            f"No model has alias '{settings.alias}' (tried {tried}) and the fallback model "
            f"{name} has no registered version: train it first (dbt build)."
        )
    logger.warning(
        "SCORING WITH AN UNVALIDATED MODEL: no model has alias '%s' (tried %s); target '%s' "
        "allows the fallback, so gold.fraud_scores uses the LATEST version of %s (version %s), "
        "which nobody promoted. Rows carry selection='%s'. Promote a model to stop this.",
        settings.alias,
        tried,
        settings.target,
        name,
        mv.version,
        SELECTION_FALLBACK,
    )
    return ResolvedModel(name, int(mv.version), mv.run_id, None, SELECTION_FALLBACK)


def run_decision_threshold(run_id: str | None, client: Any | None = None) -> float | None:
    """The ``decision_threshold`` param of a training run (classifiers), if logged."""
    if not run_id:
        return None
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient()
    value = client.get_run(run_id).data.params.get("decision_threshold")
    return float(value) if isinstance(value, str) and value else None


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredBatch:
    """Scores plus the intermediate matrices (handy for tests and notebooks)."""

    scores: pd.DataFrame
    contributions: pd.DataFrame = field(repr=False)


def score_customers(
    features: pd.DataFrame,
    pipeline: Any,
    model: ResolvedModel,
    scoring_batch_id: str,
    scored_at: datetime | None = None,
    classifier_threshold: float | None = None,
    max_workers: int | None = None,
) -> ScoredBatch:
    """Score every row of ``features`` (``customer_id`` + the 16 features): the
    ``gold.fraud_scores`` columns (``SCORES_COLUMNS``), one ``scored_at`` for the batch."""
    scored_at = (scored_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    X = feature_matrix(features)
    kind = model_kind(pipeline)
    threshold = decision_threshold(pipeline, classifier_threshold)
    if len(X) == 0:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in SCORES_COLUMNS})
        empty["scored_at"] = pd.Series(dtype="datetime64[us]")
        return ScoredBatch(_typed_scores(empty), pd.DataFrame(columns=X.columns))
    score_fn = score_function(pipeline)
    scores = score_fn(X)
    flagged = flag(scores, threshold, kind)
    conf = confidence(scores, threshold, flagged)
    contributions = ablation_contributions(score_fn, X, baseline=scores, max_workers=max_workers)
    reasons = reason_codes(contributions, X)
    n = len(X)
    out = pd.DataFrame(
        {
            "customer_id": features[ID_COLUMN].astype(str).to_numpy(),
            "anomaly_score": scores,
            "is_anomaly": flagged.astype(bool),
            "fraud_probability": scores if kind == CLASSIFIER_KIND else np.full(n, np.nan),
            "confidence": conf,
            "risk_band": risk_bands(flagged, conf),
            "decision_threshold": np.full(n, threshold),
            "model_name": model.name,
            "model_version": np.full(n, model.version, dtype="int64"),
            "model_run_id": model.run_id,
            "model_alias": model.alias,
            "selection": model.selection,
            "scored_at": pd.Series([scored_at] * n, dtype="datetime64[us]").to_numpy(),
            "scoring_batch_id": scoring_batch_id,
        }
    )
    for column in reasons.columns:
        out[column] = reasons[column].to_numpy()
    return ScoredBatch(_typed_scores(out), contributions)


def fast_scoring_model(
    pipeline: Any, features: pd.DataFrame, verify_rows: int = FAST_VERIFY_ROWS
) -> Any:
    """The loaded pipeline compiled by ``ml.fast_inference`` (the same scores, faster: the
    scoring job makes 17 batch passes, one plus one per feature for the reason codes), checked
    equal to scikit-learn on the first ``verify_rows`` rows of ``features`` (any frame with the
    feature columns). Returns the pipeline itself, with a warning, when the evaluator does not
    support the model or disagrees."""
    from ml.fast_inference import MismatchError, UnsupportedModelError, compile_pipeline, verify

    try:
        scorer = compile_pipeline(pipeline)
    except UnsupportedModelError as exc:
        logger.warning(
            "Scoring with scikit-learn: the fast evaluator does not support it (%s)", exc
        )
        return pipeline
    sample = feature_matrix(features.iloc[:verify_rows])
    if len(sample):
        try:
            verify(scorer, pipeline, sample)
        except MismatchError as exc:
            logger.warning(
                "Scoring with scikit-learn: the fast evaluator disagrees with it on the first "
                "%d rows (%s)",
                len(sample),
                exc,
            )
            return pipeline
    logger.info(
        "Scoring with the fast evaluator %r (equal to scikit-learn on the first %d rows)",
        scorer,
        len(sample),
    )
    return scorer


def _typed_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Fixed dtypes so the warehouse schema never depends on the data (all-null columns)."""
    strings = [
        "customer_id",
        "risk_band",
        "model_name",
        "model_run_id",
        "model_alias",
        "selection",
        "scoring_batch_id",
        *[f"reason_{k}{s}" for k in range(1, N_REASONS + 1) for s in ("", "_detail")],
    ]
    df = df.astype({c: "string" for c in strings})
    df = df.astype(
        {
            "anomaly_score": "float64",
            "fraud_probability": "float64",
            "confidence": "float64",
            "decision_threshold": "float64",
            "is_anomaly": "bool",
            "model_version": "int64",
        }
    )
    return df[list(SCORES_COLUMNS)]


def run_scoring(
    features: pd.DataFrame,
    settings: ScoringSettings,
    scoring_batch_id: str,
    scored_at: datetime | None = None,
) -> pd.DataFrame:
    """What ``models/gold/fraud_scores.py`` calls: configure MLflow, resolve and load the
    model, compile it (``fast_scoring_model``: scikit-learn's scores, faster; the pipeline
    itself when that is not possible), score every customer. Raises ``ModelResolutionError``
    when no model is usable."""
    registry.configure(settings.tracking_uri, settings.registry_uri)
    resolved = resolve_scoring_model(settings)
    try:
        pipeline = registry.load_sklearn_model(resolved.name, resolved.version)
        threshold = (
            run_decision_threshold(resolved.run_id)
            if model_kind(pipeline) == CLASSIFIER_KIND
            else None
        )
    except Exception as exc:
        raise ModelResolutionError(
            f"Could not load {resolved.name} version {resolved.version} "
            f"({resolved.selection}{'@' + resolved.alias if resolved.alias else ''}): {exc}"
        ) from exc
    logger.info(
        "Scoring %d customers with %s version %s (%s)",
        len(features),
        resolved.name,
        resolved.version,
        resolved.selection,
    )
    model = fast_scoring_model(pipeline, features)
    return score_customers(features, model, resolved, scoring_batch_id, scored_at, threshold).scores


# ---------------------------------------------------------------------------------------------
# Prediction audit log (audit.model_predictions)
# ---------------------------------------------------------------------------------------------

AUDIT_COLUMNS: tuple[str, ...] = (
    "prediction_id",
    "customer_id",
    "model_name",
    "model_version",
    "model_alias",
    "selection",
    "prediction_timestamp",
    "is_anomaly",
    "confidence",
    "score",
    "risk_band",
    "scoring_batch_id",
    "dbt_invocation_id",
)


def prediction_ids(
    scoring_batch_ids: Sequence[str],
    customer_ids: Sequence[str],
    model_names: Sequence[str],
    model_versions: Sequence[int],
) -> list[str]:
    """Deterministic prediction ids: sha256 hex of
    ``"<scoring_batch_id>|<customer_id>|<model_name>|<model_version>"``."""
    return [
        hashlib.sha256(f"{b}|{c}|{m}|{v}".encode()).hexdigest()
        for b, c, m, v in zip(
            scoring_batch_ids, customer_ids, model_names, model_versions, strict=True
        )
    ]


def prediction_log_rows(scores: pd.DataFrame, dbt_invocation_id: str) -> pd.DataFrame:
    """``audit.model_predictions`` rows for a ``gold.fraud_scores`` frame.

    ``prediction_timestamp`` = ``scored_at``; ``score`` = ``anomaly_score``;
    ``dbt_invocation_id`` = the invocation that appended the row (equal to
    ``scoring_batch_id`` when scoring and logging ran in the same ``dbt build``)."""
    versions = scores["model_version"].astype("int64")
    out = pd.DataFrame(
        {
            "prediction_id": prediction_ids(
                scores["scoring_batch_id"].astype(str).tolist(),
                scores["customer_id"].astype(str).tolist(),
                scores["model_name"].astype(str).tolist(),
                versions.tolist(),
            ),
            "customer_id": scores["customer_id"].astype("string"),
            "model_name": scores["model_name"].astype("string"),
            "model_version": versions,
            "model_alias": scores["model_alias"].astype("string"),
            "selection": scores["selection"].astype("string"),
            "prediction_timestamp": pd.to_datetime(scores["scored_at"]).astype("datetime64[us]"),
            "is_anomaly": scores["is_anomaly"].astype(bool),
            "confidence": scores["confidence"].astype("float64"),
            "score": scores["anomaly_score"].astype("float64"),
            "risk_band": scores["risk_band"].astype("string"),
            "scoring_batch_id": scores["scoring_batch_id"].astype("string"),
            "dbt_invocation_id": pd.Series(
                [dbt_invocation_id] * len(scores), dtype="string", index=scores.index
            ),
        }
    )
    return out[list(AUDIT_COLUMNS)].reset_index(drop=True)


def not_yet_logged(rows: pd.DataFrame, existing_ids: Sequence[str]) -> pd.DataFrame:
    """The rows whose ``prediction_id`` is not in ``existing_ids`` (append-only log)."""
    return rows[~rows["prediction_id"].isin(set(existing_ids))].reset_index(drop=True)


def sql_string_list(values: Sequence[str]) -> str:
    """``'a', 'b'`` with quotes escaped, for an ``IN (...)`` list."""
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
