"""Where the MLflow tracking server and model registry are, and the registered model names.

Local default: a sqlite database and an artifact folder inside the project (``.mlflow/``,
git-ignored). Override with ``FRAUD_MLFLOW_DIR`` (another local folder, used by tests and the
benchmark so they never touch the main job's registry) or with the standard
``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` (``databricks`` / ``databricks-uc``).
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

PROJECT_ROOT = Path(__file__).resolve().parent.parent

CATALOG = "main"
MODEL_SCHEMA = "ml_models"
ISOLATION_FOREST_MODEL = f"{CATALOG}.{MODEL_SCHEMA}.fraud_detection_isolation_forest"
RANDOM_FOREST_MODEL = f"{CATALOG}.{MODEL_SCHEMA}.fraud_detection_random_forest"
EXPERIMENT_NAME = "fraud_detection"

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
PREVIOUS_ALIAS = "previous"


@dataclass(frozen=True)
class MlflowSettings:
    """Resolved MLflow locations."""

    tracking_uri: str
    registry_uri: str
    artifact_location: str | None


def local_mlflow_dir() -> Path:
    """The folder holding the local sqlite store and artifacts."""
    return Path(os.environ.get("FRAUD_MLFLOW_DIR", PROJECT_ROOT / ".mlflow")).resolve()


def resolve_settings(
    tracking_uri: str | None = None, registry_uri: str | None = None
) -> MlflowSettings:
    """Explicit arguments win, then MLFLOW_* environment variables, then the local store."""
    local = local_mlflow_dir()
    default_uri = f"sqlite:///{local / 'mlflow.db'}"
    tracking = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri
    registry = registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or tracking
    artifacts = (local / "artifacts").as_uri() if tracking.startswith("sqlite:") else None
    return MlflowSettings(tracking, registry, artifacts)


def configure(tracking_uri: str | None = None, registry_uri: str | None = None) -> MlflowSettings:
    """Point the mlflow client at the tracking store and registry; create the local folder."""
    settings = resolve_settings(tracking_uri, registry_uri)
    if settings.tracking_uri.startswith("sqlite:"):
        local_mlflow_dir().mkdir(parents=True, exist_ok=True)
    # mlflow also exports both URIs to os.environ (for subprocesses). Put the caller's
    # environment back, so that MLFLOW_*_URI keep meaning "set by the user" and a later call
    # in the same process (another dbt model, another test) resolves its own settings.
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return settings


def ensure_experiment(settings: MlflowSettings, name: str = EXPERIMENT_NAME) -> str:
    """Return the experiment id, creating it with the local artifact folder when missing."""
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=settings.artifact_location)


MODEL_SHORT_NAMES = {
    "random_forest": RANDOM_FOREST_MODEL,
    "isolation_forest": ISOLATION_FOREST_MODEL,
    "fraud_detection_random_forest": RANDOM_FOREST_MODEL,
    "fraud_detection_isolation_forest": ISOLATION_FOREST_MODEL,
}


def resolve_model_name(name: str) -> str:
    """Full registered-model name for a short name (``random_forest``); other names unchanged."""
    return MODEL_SHORT_NAMES.get(name.strip().lower(), name.strip())


# --------------------------------------------------------------------------------------------
# Extensions used by training (ml.training), scoring (ml.scoring), promotion and monitoring.
# --------------------------------------------------------------------------------------------

# Default order in which gold.fraud_scores looks for the scoring alias (first hit wins): the
# supervised model when one has been promoted, else the unsupervised one.
SCORING_MODEL_NAMES: tuple[str, ...] = (RANDOM_FOREST_MODEL, ISOLATION_FOREST_MODEL)

# MLflow 3 saves scikit-learn models with skops, which refuses to load any type that is not
# trusted explicitly. Our pipelines are StandardScaler + IsolationForest / RandomForest; skops
# trusts scikit-learn estimators and numpy by default, and the only extra type they contain is
# the compiled tree structure. Listed here (stored in the MLmodel file, so loading in any
# process uses the same list); safety is never disabled globally.
SKOPS_TRUSTED_TYPES: tuple[str, ...] = ("sklearn.tree._tree.Tree",)

# Artifact paths inside a training run (relative to the run's artifact root).
MODEL_ARTIFACT_NAME = "model"
SCALER_ARTIFACT_PATH = "scaler/scaler.skops"
CLASSIFICATION_REPORT_ARTIFACT = "classification_report.txt"
REFERENCE_ARTIFACT_PATH = "reference/training_features.parquet"
TOP_ANOMALIES_ARTIFACT = "top_anomalies.csv"

# One process-wide lock around MLflow writes: dbt runs the two training models in parallel
# threads of one process, and the sqlite store does not like concurrent writers (nor two
# threads creating the experiment at once).
MLFLOW_WRITE_LOCK = threading.RLock()


def git_commit(path: Path = PROJECT_ROOT) -> str:
    """``git rev-parse HEAD`` of the project, or ``'unknown'`` outside a git work tree."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def _is_missing(exc: MlflowException) -> bool:
    return exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


def latest_version(name: str, client: MlflowClient | None = None) -> ModelVersion | None:
    """The highest version number of a registered model; None if it has no version (or does
    not exist). Connection and permission errors propagate."""
    client = client or MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise
    if not versions:
        return None
    return max(versions, key=lambda v: int(v.version))


def version_by_alias(
    name: str, alias: str, client: MlflowClient | None = None
) -> ModelVersion | None:
    """The version carrying ``alias``; None when the model or the alias does not exist.
    Connection and permission errors propagate."""
    client = client or MlflowClient()
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise


def model_uri(name: str, version: int | str) -> str:
    """``models:/<name>/<version>``."""
    return f"models:/{name}/{version}"


def load_sklearn_model(name: str, version: int | str) -> Any:
    """Load a registered scikit-learn pipeline (skops, with the trusted types saved in it)."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(model_uri(name, version))
