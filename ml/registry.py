"""Where the MLflow tracking server and model registry are, and the registered model names.

Local default: a sqlite database and an artifact folder inside the project (``.mlflow/``,
git-ignored). Override with ``FRAUD_MLFLOW_DIR`` (another local folder, used by tests and the
benchmark so they never touch the main job's registry) or with the standard
``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` (``databricks`` / ``databricks-uc``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import mlflow

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


def configure(
    tracking_uri: str | None = None, registry_uri: str | None = None
) -> MlflowSettings:
    """Point the mlflow client at the tracking store and registry; create the local folder."""
    settings = resolve_settings(tracking_uri, registry_uri)
    if settings.tracking_uri.startswith("sqlite:"):
        local_mlflow_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    return settings


def ensure_experiment(settings: MlflowSettings, name: str = EXPERIMENT_NAME) -> str:
    """Return the experiment id, creating it with the local artifact folder when missing."""
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=settings.artifact_location)
