"""What monitoring reads: the monitored model version and its training reference (MLflow),
and the predictions and features of a window (warehouse).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ml import registry
from ml import warehouse as wh_mod
from ml.monitoring.statistics import (
    REFERENCE_ARTIFACT,
    MonitoringError,
    finite_values,
    monitored_features,
)


@dataclass
class Target:
    model_name: str
    version: str | None
    resolved_by: str
    run_id: str | None = None


def resolve_target(client: Any, model: str | None, version: int | None) -> Target:
    """Which model version to monitor: the version scoring uses, by the registry's one rule
    (``registry.select_version`` with settings ``scoring_*``), narrowed to ``--model`` when
    given. ``--version`` (or ``scoring_model_version``) is monitored as given: its predictions
    stay in the log even when the registry no longer has it."""
    selection = registry.ModelSelection.from_settings({})
    pinned = version if version is not None else selection.pinned_version
    how_pinned = "--version" if version is not None else "scoring_model_version"
    if model:
        name = registry.resolve_model_name(model)
        if pinned is not None:
            return Target(name, str(pinned), how_pinned)
        selection = replace(selection, model_names=(name,))
    selection = replace(selection, pinned_version=None)
    fallback = selection.model_names[0] if model else registry.ISOLATION_FOREST_MODEL
    try:
        chosen = registry.select_version(selection, client, fallback)
    except registry.RegistryUnreachable:
        raise
    except registry.RegistryError:  # a name the registry's search filter cannot express
        chosen = None
    if pinned is not None:
        return Target(chosen.name if chosen else fallback, str(pinned), how_pinned)
    if chosen is None:
        if model:
            return Target(selection.model_names[0], None, "not in the registry")
        raise MonitoringError(
            "no champion for the random forest or the isolation forest, and no isolation forest "
            "version: pass --model (and --version)"
        )
    how = "latest version" if chosen.selection == registry.SELECTION_FALLBACK else chosen.alias
    return Target(chosen.name, str(chosen.version), str(how))


def load_reference(client: Any, target: Target) -> tuple[pd.DataFrame | None, str]:
    """The training reference of the version's run, or None and the reason."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if target.version is None:
        return None, "no model version to read a reference from"
    try:
        model_version = client.get_model_version(target.model_name, target.version)
    except MlflowException as exc:
        return None, f"{target.model_name} v{target.version} not in the registry ({exc.message})"
    target.run_id = model_version.run_id or None
    if not target.run_id:
        return None, f"{target.model_name} v{target.version} has no source run"
    try:
        with tempfile.TemporaryDirectory() as folder:
            local = mlflow.artifacts.download_artifacts(
                run_id=target.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=folder
            )
            frame = pd.read_parquet(local)
    except (MlflowException, OSError, ValueError) as exc:
        return None, f"cannot read {REFERENCE_ARTIFACT} of run {target.run_id}: {exc}"
    return frame, ""


# --------------------------------------------------------------------------------------------
# Warehouse reads
# --------------------------------------------------------------------------------------------


@dataclass
class Observed:
    """What the warehouse says about the monitored version."""

    predictions_relation: str
    features_relation: str
    version: str | None
    window_start: datetime | None = None
    window_end: datetime | None = None
    daily: pd.DataFrame = field(default_factory=pd.DataFrame)
    batch_id: str | None = None
    batch_time: datetime | None = None
    batch_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    features: pd.DataFrame = field(default_factory=pd.DataFrame)


def _to_datetime(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    moment: datetime = pd.Timestamp(value).to_pydatetime()
    return moment


def parse_as_of(text: str) -> datetime:
    """ISO timestamp; a bare date means the end of that day."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1), time()) - timedelta(microseconds=1)
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise MonitoringError(f"--as-of {text!r} is not an ISO date or timestamp") from exc


def _align(moment: datetime, like: datetime | None) -> datetime:
    """Give ``moment`` the time-zone awareness of the column values (naive values are UTC)."""
    aware_column = like is not None and like.tzinfo is not None
    if aware_column and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    if not aware_column and moment.tzinfo is not None:
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def read_warehouse(
    warehouse: wh_mod.Warehouse,
    target: Target,
    days: int,
    as_of: datetime | None,
) -> Observed:
    predictions = warehouse.relation("audit", "model_predictions")
    feature_schema, feature_table, feature_names = monitored_features(target.model_name)
    features = warehouse.relation(feature_schema, feature_table)
    for schema, name, relation in (
        ("audit", "model_predictions", predictions),
        (feature_schema, feature_table, features),
    ):
        if not warehouse.table_exists(schema, name):
            raise MonitoringError(
                f"{relation} does not exist on {warehouse.description}: build and score first"
            )
    text = warehouse.sql_type("text")
    where = "model_name = ?"
    params: list[Any] = [target.model_name]
    version = target.version
    if version is None:
        latest = warehouse.query(
            f"select cast(model_version as {text}) as v, max(prediction_timestamp) as ts "
            f"from {predictions} where model_name = ? group by cast(model_version as {text}) "
            "order by ts desc limit 1",
            [target.model_name],
        )
        version = None if latest.empty else str(latest.iloc[0]["v"])
    if version is not None:
        where += f" and cast(model_version as {text}) = ?"
        params.append(version)
    observed = Observed(predictions, features, version)

    stats = warehouse.query(
        f"select max(prediction_timestamp) as max_ts from {predictions} where {where}", params
    )
    latest_ts = _to_datetime(stats.iloc[0]["max_ts"]) if not stats.empty else None
    end = _align(as_of, latest_ts) if as_of is not None else latest_ts
    feature_columns = _feature_columns(warehouse, features, feature_names)
    if feature_columns:
        columns = ", ".join(warehouse.quote(column) for column in feature_columns)
        observed.features = warehouse.query(f"select {columns} from {features}")
    if end is None:
        return observed
    start = end - timedelta(days=days)
    observed.window_start, observed.window_end = start, end
    window = f"{where} and prediction_timestamp > ? and prediction_timestamp <= ?"
    window_params = [*params, start, end]
    observed.daily = warehouse.query(
        "select cast(prediction_timestamp as date) as day, count(*) as predictions, "
        "sum(cast(is_anomaly as integer)) as anomalies, avg(confidence) as avg_confidence "
        f"from {predictions} where {window} "
        "group by cast(prediction_timestamp as date) order by day",
        window_params,
    )
    batch = warehouse.query(
        f"select cast(dbt_invocation_id as {text}) as batch_id, "
        "max(prediction_timestamp) as batch_time "
        f"from {predictions} where {window} "
        f"group by cast(dbt_invocation_id as {text}) order by batch_time desc limit 1",
        window_params,
    )
    if not batch.empty:
        batch_id = batch.iloc[0]["batch_id"]
        observed.batch_time = _to_datetime(batch.iloc[0]["batch_time"])
        if batch_id is None or pd.isna(batch_id):
            scores = warehouse.query(
                f"select score from {predictions} where {where} and prediction_timestamp = ?",
                [*params, observed.batch_time],
            )
        else:
            observed.batch_id = str(batch_id)
            scores = warehouse.query(
                f"select score from {predictions} where {window} "
                f"and cast(dbt_invocation_id as {text}) = ?",
                [*window_params, observed.batch_id],
            )
        observed.batch_scores = finite_values(scores["score"])
    return observed


def _feature_columns(
    warehouse: wh_mod.Warehouse, relation: str, names: tuple[str, ...]
) -> list[str]:
    present = set(warehouse.query(f"select * from {relation} where 1 = 0").columns)
    return [column for column in names if column in present]
