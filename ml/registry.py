"""Where the MLflow tracking server and model registry are, and the registered model names.

Local default: a sqlite database and an artifact folder inside the project (``.mlflow/``,
git-ignored). Override with ``FRAUD_MLFLOW_DIR`` (another local folder, used by tests and the
benchmark so they never touch the main job's registry) or with the standard
``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` (``databricks`` / ``databricks-uc``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ml.settings import DEFAULT_MLFLOW_DIR, from_env, with_env_fallback

CATALOG = "main"
MODEL_SCHEMA = "ml_models"
ISOLATION_FOREST_MODEL = f"{CATALOG}.{MODEL_SCHEMA}.fraud_detection_isolation_forest"
RANDOM_FOREST_MODEL = f"{CATALOG}.{MODEL_SCHEMA}.fraud_detection_random_forest"
TRANSACTION_CLASSIFIER_MODEL = f"{CATALOG}.{MODEL_SCHEMA}.fraud_detection_transaction_classifier"
EXPERIMENT_NAME = "fraud_detection"

# How a version was selected (the ``selection`` column of gold.fraud_scores).
SELECTION_ALIAS = "alias"
SELECTION_PINNED = "pinned_version"
SELECTION_FALLBACK = "fallback_latest_unvalidated"

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
    return Path(from_env("mlflow_dir") or DEFAULT_MLFLOW_DIR).resolve()


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


_SERVING_FLAG = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"  # see configure()


def configure(tracking_uri: str | None = None, registry_uri: str | None = None) -> MlflowSettings:
    """Point the mlflow client at the tracking store and registry; create the local folder."""
    settings = resolve_settings(tracking_uri, registry_uri)
    # MLflow validates an input example inside a context manager that sets this flag and, on
    # exit, deletes it when it was unset: two dbt Python models doing so in threads of one
    # process raced (KeyError on the second delete). Set to its falsy value it is restored,
    # never deleted; "false" reads as not-serving exactly as unset does.
    os.environ.setdefault(_SERVING_FLAG, "false")
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
    "transaction_classifier": TRANSACTION_CLASSIFIER_MODEL,
    "fraud_detection_transaction_classifier": TRANSACTION_CLASSIFIER_MODEL,
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


class RegistryError(Exception):
    """A model, version or alias the registry does not have, or a name it cannot search."""


def _is_missing(exc: MlflowException) -> bool:
    return exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


def name_filter(name: str) -> str:
    """An MLflow search filter for one model name (quoted so a quote in the name is safe)."""
    if "'" not in name:
        return f"name = '{name}'"
    if '"' not in name:
        return f'name = "{name}"'
    raise RegistryError(f"model name {name!r} contains both quote characters; not supported")


def latest_version(name: str, client: Any | None = None) -> ModelVersion | None:
    """The highest READY version of a registered model; None if it has none (or does not
    exist). Connection and permission errors propagate."""
    client = client or MlflowClient()
    try:
        versions = client.search_model_versions(name_filter(name))
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise
    ready = [v for v in versions if str(getattr(v, "status", None) or "READY") == "READY"]
    return max(ready, key=lambda v: int(v.version)) if ready else None


def registered_aliases(client: Any, name: str) -> dict[str, int]:
    """``{alias: version}`` of a registered model (RegistryError when it does not exist)."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"registered model {name!r} not found in the registry") from exc
        raise
    return {str(alias): int(version) for alias, version in (model.aliases or {}).items()}


def resolve_version_spec(client: Any, name: str, spec: str) -> int:
    """Version number for ``latest``, ``N`` or an alias name (the model must exist)."""
    aliases = registered_aliases(client, name)
    if spec == "latest":
        latest = latest_version(name, client)
        if latest is None:
            raise RegistryError(f"model {name!r} has no READY version")
        return int(latest.version)
    if spec.isdigit():
        try:
            client.get_model_version(name, spec)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(f"model {name!r} has no version {spec}") from exc
            raise
        return int(spec)
    if spec in aliases:
        return aliases[spec]
    known = ", ".join(sorted(aliases)) or "none"
    raise RegistryError(f"model {name!r} has no alias {spec!r} (aliases: {known})")


def version_by_alias(name: str, alias: str, client: Any | None = None) -> ModelVersion | None:
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


# --------------------------------------------------------------------------------------------
# The model-selection rule: which version is "the model" (scoring, monitoring, promotion's
# champion, the metrics report). Settings scoring_model_names, scoring_alias,
# scoring_model_version (dbt vars; FRAUD_SCORING_* for the CLIs, see ml.settings).
# --------------------------------------------------------------------------------------------

SELECTION_SETTINGS: tuple[str, ...] = (
    "scoring_model_names",
    "scoring_alias",
    "scoring_model_version",
)


def _names(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(v).strip() for v in value if str(v).strip())


def split_names(value: Any) -> tuple[str, ...] | None:
    """A list setting given as a list or a comma string; None when unset."""
    return _names(value)


@dataclass(frozen=True)
class ModelSelection:
    """Which model version is used. ``model_names``: tried in order, the first carrying
    ``alias`` wins. ``pinned_version``: exactly this version of the single name in
    ``model_names``."""

    model_names: tuple[str, ...] = SCORING_MODEL_NAMES
    alias: str = CHAMPION_ALIAS
    pinned_version: int | None = None

    @classmethod
    def from_settings(cls, values: dict[str, Any]) -> ModelSelection:
        """From dbt vars (None / missing = the environment variable, then the default).
        Model names may be short (``random_forest``) and given as a comma string."""
        values = with_env_fallback(values, SELECTION_SETTINGS)
        kwargs: dict[str, Any] = {}
        if (model_names := _names(values.get("scoring_model_names"))) is not None:
            kwargs["model_names"] = tuple(resolve_model_name(n) for n in model_names)
        if values.get("scoring_alias"):
            kwargs["alias"] = str(values["scoring_alias"])
        if values.get("scoring_model_version") not in (None, ""):
            kwargs["pinned_version"] = int(str(values["scoring_model_version"]))
        return cls(**kwargs)


@dataclass(frozen=True)
class SelectedVersion:
    """A registry model version chosen by ``select_version``."""

    name: str
    version: int
    run_id: str | None
    alias: str | None
    selection: str


class SelectionError(RegistryError):
    """The selection cannot be satisfied (``what`` names the look-up that failed)."""


class RegistryUnreachable(RegistryError):
    """The registry failed while looking up ``what``."""

    def __init__(self, what: str, cause: Exception) -> None:
        super().__init__(f"Could not query the MLflow model registry for {what}: {cause}.")
        self.what = what
        self.cause = cause


def select_version(
    selection: ModelSelection, client: Any, fallback_name: str | None = None
) -> SelectedVersion | None:
    """THE rule: the pinned version, else the first model name carrying the alias, else (when
    ``fallback_name`` is given) the latest version of ``fallback_name`` (selection
    ``fallback_latest_unvalidated``), else None. Raises ``SelectionError`` for an impossible
    pin and ``RegistryUnreachable`` when the registry fails."""
    if not selection.model_names:
        raise SelectionError("var scoring_model_names is empty: no model to score with")
    if selection.pinned_version is not None:
        return _pinned_version(selection, client)
    for name in selection.model_names:
        try:
            mv = version_by_alias(name, selection.alias, client)
        except Exception as exc:
            raise RegistryUnreachable(f"{name}@{selection.alias}", exc) from exc
        if mv is not None:
            return SelectedVersion(
                name, int(mv.version), mv.run_id, selection.alias, SELECTION_ALIAS
            )
    if fallback_name is None:
        return None
    try:
        mv = latest_version(fallback_name, client)
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryUnreachable(f"the latest version of {fallback_name}", exc) from exc
    if mv is None:
        return None
    return SelectedVersion(fallback_name, int(mv.version), mv.run_id, None, SELECTION_FALLBACK)


def _pinned_version(selection: ModelSelection, client: Any) -> SelectedVersion:
    if len(selection.model_names) != 1:
        raise SelectionError(
            f"scoring_model_version={selection.pinned_version} pins a version of ONE model, "
            f"but scoring_model_names lists {len(selection.model_names)}: "
            f"{', '.join(selection.model_names)}. Set scoring_model_names to one name."
        )
    name = selection.model_names[0]
    try:
        mv = client.get_model_version(name, str(selection.pinned_version))
    except Exception as exc:
        if getattr(exc, "error_code", None) in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}:
            raise SelectionError(
                f"Model version {name} version {selection.pinned_version} "
                "(var scoring_model_version) does not exist in the registry."
            ) from exc
        raise RegistryUnreachable(f"{name} version {selection.pinned_version}", exc) from exc
    return SelectedVersion(name, int(mv.version), mv.run_id, None, SELECTION_PINNED)
