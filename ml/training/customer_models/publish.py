"""Publishing a per-customer training run: its identity, its MLflow logging and registration,
and the training-run row of a skipped retrain (README "Models, scores and explanations").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    classification_report,
    confusion_matrix,
)
from sklearn.pipeline import Pipeline

from ml import registry
from ml.provenance import utc_now_naive
from ml.timing import phase
from ml.training.customer_models.params import (
    EVALUATION_METRICS,
    STATUS_SKIPPED,
    STATUS_TRAINED,
    RetrainPolicy,
    TrainingContext,
)
from ml.training.customer_models.steps import (
    retraining_decision,
    training_config_fingerprint,
    training_run_row,
)

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# MLflow publishing
# ---------------------------------------------------------------------------------------------


def _finite_metrics(metrics: Mapping[str, float | int | None]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    }


@phase
def publish_run(
    *,
    model_name: str,
    pipeline: Pipeline,
    X: pd.DataFrame,
    params: Mapping[str, Any],
    metrics: Mapping[str, float | int | None],
    tags: Mapping[str, str],
    artifacts_dir: Path,
    context: TrainingContext,
    skops_trusted_types: Sequence[str] = registry.SKOPS_TRUSTED_TYPES,
    extra_requirements: Sequence[str] = (),
) -> tuple[str, int]:
    """Log one run (params, metrics, tags, every file under ``artifacts_dir`` keeping its
    relative path, the pipeline as model ``model``, saved with skops trusting exactly
    ``skops_trusted_types``) and register it. Returns (run id, version)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    sample = X.head(5)
    signature = infer_signature(sample, pipeline.predict(sample))
    with registry.MLFLOW_WRITE_LOCK:
        settings = registry.configure(context.tracking_uri, context.registry_uri)
        experiment_id = registry.ensure_experiment(settings, context.experiment_name)
        with mlflow.start_run(experiment_id=experiment_id, run_name=model_name) as run:
            mlflow.set_tags(dict(tags))
            mlflow.log_params({k: str(v) for k, v in params.items()})
            mlflow.log_metrics(_finite_metrics(metrics))
            mlflow.log_artifacts(str(artifacts_dir))
            logged = mlflow.sklearn.log_model(
                pipeline,
                name=registry.MODEL_ARTIFACT_NAME,
                serialization_format="skops",
                skops_trusted_types=list(skops_trusted_types),
                signature=signature,
                input_example=sample,
                registered_model_name=model_name,
                # explicit: MLflow's inference imports the model in a subprocess (~20 s)
                pip_requirements=model_pip_requirements(extra_requirements),
            )
            version = logged.registered_model_version
            client = mlflow.MlflowClient()
            for key in ("training_data_fingerprint", "dbt_invocation_id", "git_commit"):
                client.set_model_version_tag(model_name, str(version), key, tags[key])
            client.update_model_version(
                model_name,
                str(version),
                description=(
                    f"{tags['model_type']} trained by dbt invocation "
                    f"{tags['dbt_invocation_id']} (target {tags['dbt_target']}) on "
                    f"{tags['input_relations']}; run {run.info.run_id}"
                ),
            )
    return run.info.run_id, int(version)


def model_pip_requirements(extra: Sequence[str] = ()) -> list[str]:
    """Pinned runtime requirements of the logged pipelines (installed versions)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("scikit-learn", "skops", "numpy", "scipy", "pandas", *extra):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def run_tags(context: TrainingContext, fingerprint: str, model_type: str) -> dict[str, str]:
    return {
        "git_commit": context.git_commit,
        "dbt_invocation_id": context.dbt_invocation_id,
        "dbt_target": context.dbt_target,
        "input_relations": ",".join(context.input_relations),
        "training_data_fingerprint": fingerprint,
        "model_type": model_type,
    }


@phase
def write_common_artifacts(
    out: Path,
    pipeline: Pipeline,
    report_text: str,
    reference: pd.DataFrame,
) -> None:
    import skops.io

    (out / "scaler").mkdir(parents=True, exist_ok=True)
    skops.io.dump(pipeline.named_steps["scaler"], out / registry.SCALER_ARTIFACT_PATH)
    (out / registry.CLASSIFICATION_REPORT_ARTIFACT).write_text(report_text)
    (out / "reference").mkdir(parents=True, exist_ok=True)
    reference.to_parquet(out / registry.REFERENCE_ARTIFACT_PATH, index=False)
    (out / "plots").mkdir(parents=True, exist_ok=True)


def classification_report_text(y_true: np.ndarray, y_pred: np.ndarray, header: str) -> str:
    body = classification_report(
        y_true,
        y_pred,
        labels=[False, True],
        target_names=["not_fraudulent", "fraudulent"],
        digits=4,
        zero_division=0,
    )
    matrix = confusion_matrix(y_true, y_pred, labels=[False, True])
    return (
        f"{header}\n\n{body}\nconfusion matrix (rows: actual not_fraudulent, fraudulent; "
        f"columns: predicted)\n{matrix}\n"
    )


def run_identity(
    model_name: str,
    features: pd.DataFrame,
    y: np.ndarray,
    fingerprint: str,
    params: Any,
    context: TrainingContext,
) -> dict[str, Any]:
    """The columns every ``*_training_runs`` row carries, trained or skipped."""
    return {
        "model_name": model_name,
        "n_customers": len(features),
        "n_fraud_customers": int(y.sum()),
        "n_transactions": int(features["total_transactions"].sum()),
        "dbt_invocation_id": context.dbt_invocation_id,
        "training_data_fingerprint": fingerprint,
        "training_config_fingerprint": training_config_fingerprint(params),
        "git_commit": context.git_commit,
        "mlflow_tracking_uri": registry.resolve_settings(context.tracking_uri).tracking_uri,
        "as_of_date": context.as_of_date,
    }


def retrain_skip_row(
    identity: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    policy: RetrainPolicy | None,
) -> pd.DataFrame | None:
    """The ``skipped`` row when the retrain policy says the registered model is still current."""
    now = utc_now_naive()
    reason = retraining_decision(
        previous,
        data_fingerprint=identity["training_data_fingerprint"],
        config_fingerprint=identity["training_config_fingerprint"],
        n_transactions=identity["n_transactions"],
        n_customers=identity["n_customers"],
        as_of=identity.get("as_of_date"),
        policy=policy or RetrainPolicy(),
    )
    if reason is None:
        return None
    logger.info("%s not retrained: %s", identity["model_name"], reason)
    return training_run_row(status=STATUS_SKIPPED, skip_reason=reason, trained_at=now, **identity)


def trained_row(
    identity: Mapping[str, Any],
    run_id: str,
    version: int,
    metrics: Mapping[str, Any],
    *,
    n_train: int,
    n_test: int,
    evaluation_set: str,
    fit_seconds: float,
    started: float,
) -> pd.DataFrame:
    """The training-run row of a model that was trained and registered (``started``: the
    ``time.perf_counter()`` at the start of the training)."""
    return training_run_row(
        run_id=run_id,
        model_version=version,
        status=STATUS_TRAINED,
        trained_at=utc_now_naive(),
        n_train=n_train,
        n_test=n_test,
        evaluation_set=evaluation_set,
        fit_seconds=fit_seconds,
        training_seconds=time.perf_counter() - started,
        **identity,
        **{k: metrics[k] for k in (*EVALUATION_METRICS, "n_anomalies_detected", "anomaly_rate")},
    )
