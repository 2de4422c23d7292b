"""Scoring settings, and the model version gold.fraud_scores scores with: the registry's one
selection rule (``ml.registry.select_version``) plus the first-run fallback policy of a dbt
target (README "Models, scores and explanations")."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ml import registry
from ml.registry import SELECTION_FALLBACK, SelectedVersion

logger = logging.getLogger(__name__)

NOT_REBUILT = "gold.fraud_scores was not rebuilt; the previous table is unchanged."


class ModelResolutionError(RuntimeError):
    """No usable model: registry unreachable, alias or version missing, or no fallback."""


class NothingRegisteredError(ModelResolutionError):
    """A target that allows the fallback, and no version of the fallback model at all (its
    training was skipped or never ran)."""


@dataclass(frozen=True)
class ScoringSettings:
    """Which model ``gold.fraud_scores`` uses (dbt vars of the same names, see the YAML).

    ``model_names``, ``alias``, ``pinned_version``: the selection (``registry.ModelSelection``).
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
    table: str = "gold.fraud_scores"  # the table scored, named in messages

    @property
    def selection(self) -> registry.ModelSelection:
        return registry.ModelSelection(self.model_names, self.alias, self.pinned_version)

    @classmethod
    def from_mapping(cls, values: dict[str, Any], target: str) -> ScoringSettings:
        """From dbt vars (None / missing = the setting's environment variable, then the
        default). Lists may be given as a comma string; model names may be short
        (``random_forest``, ``isolation_forest``)."""
        selection = registry.ModelSelection.from_settings(values)
        kwargs: dict[str, Any] = {
            "target": target,
            "model_names": selection.model_names,
            "alias": selection.alias,
            "pinned_version": selection.pinned_version,
        }
        fallback = registry.split_names(values.get("unvalidated_fallback_targets"))
        if fallback is not None:
            kwargs["fallback_targets"] = fallback
        kwargs["tracking_uri"] = values.get("mlflow_tracking_uri") or None
        kwargs["registry_uri"] = values.get("mlflow_registry_uri") or None
        return cls(**kwargs)


def _not_rebuilt(settings: ScoringSettings) -> str:
    return NOT_REBUILT.replace("gold.fraud_scores", settings.table)


def resolve_scoring_model(settings: ScoringSettings, client: Any | None = None) -> SelectedVersion:
    """Pick the model version to score with (see ``ScoringSettings``).

    Raises ``ModelResolutionError`` naming the model(s) and alias/version when the registry is
    unreachable, a pinned version does not exist, or no model has the alias on a target that
    is not in ``fallback_targets`` (or the fallback model has no version at all).
    """
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient()
    allows_fallback = settings.target in settings.fallback_targets
    fallback_name = settings.fallback_model_name if allows_fallback else None
    try:
        chosen = registry.select_version(settings.selection, client, fallback_name)
    except registry.RegistryUnreachable as exc:
        raise ModelResolutionError(
            f"{exc} Check var mlflow_registry_uri / MLFLOW_REGISTRY_URI / FRAUD_MLFLOW_DIR. "
            + _not_rebuilt(settings)
        ) from exc
    except registry.RegistryError as exc:
        suffix = f" {_not_rebuilt(settings)}" if "does not exist" in str(exc) else ""
        raise ModelResolutionError(f"{exc}{suffix}") from exc
    if chosen is not None and chosen.selection != SELECTION_FALLBACK:
        return chosen

    tried = ", ".join(settings.model_names)
    if not allows_fallback:
        raise ModelResolutionError(
            f"No model has alias '{settings.alias}' (tried {tried}) and target "
            f"'{settings.target}' is not in var unvalidated_fallback_targets "
            f"{list(settings.fallback_targets)}. Promote a validated version "
            f"(set alias '{settings.alias}'), or pin one with var scoring_model_version. "
            + _not_rebuilt(settings)
        )
    if chosen is None:
        raise NothingRegisteredError(
            f"No model has alias '{settings.alias}' (tried {tried}) and the fallback model "
            f"{fallback_name} has no registered version: train it first (dbt build)."
        )
    logger.warning(
        "SCORING WITH AN UNVALIDATED MODEL: no model has alias '%s' (tried %s); target '%s' "
        "allows the fallback, so %s uses the LATEST version of %s (version %s), "
        "which nobody promoted. Rows carry selection='%s'. Promote a model to stop this.",
        settings.alias,
        tried,
        settings.target,
        settings.table,
        chosen.name,
        chosen.version,
        SELECTION_FALLBACK,
    )
    return chosen


def run_decision_threshold(run_id: str | None, client: Any | None = None) -> float | None:
    """The ``decision_threshold`` param of a training run (classifiers), if logged."""
    if not run_id:
        return None
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient()
    value = client.get_run(run_id).data.params.get("decision_threshold")
    return float(value) if isinstance(value, str) and value else None
