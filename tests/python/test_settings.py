"""ml.settings and the one selection rule: a setting has one name, its environment variable
is derived from it, and scoring, monitoring and the metrics report select the same version."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from ml import registry, settings
from ml.monitoring.inputs import resolve_target
from ml.scoring.selection import ScoringSettings, resolve_scoring_model

RF = registry.RANDOM_FOREST_MODEL
IF = registry.ISOLATION_FOREST_MODEL


@dataclass
class Version:
    name: str
    version: str
    run_id: str
    status: str = "READY"


class Registry:
    """{name: {version: [aliases]}} behind the MlflowClient calls the rule makes."""

    def __init__(self, models: dict[str, dict[int, list[str]]]) -> None:
        self.models = models

    def get_model_version_by_alias(self, name: str, alias: str) -> Version:
        for version, aliases in self.models.get(name, {}).items():
            if alias in aliases:
                return Version(name, str(version), f"run-{version}")
        raise MlflowException("no alias", error_code=INVALID_PARAMETER_VALUE)

    def search_model_versions(self, filter_string: str) -> list[Version]:
        name = filter_string.split("'")[1]
        return [Version(name, str(v), f"run-{v}") for v in self.models.get(name, {})]

    def get_model_version(self, name: str, version: str) -> Version:
        if int(version) not in self.models.get(name, {}):
            raise MlflowException("not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return Version(name, version, f"run-{version}")


def test_env_var_is_derived_from_the_setting_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.env_var_name("schema_prefix") == "FRAUD_SCHEMA_PREFIX"
    assert settings.env_var_name("scoring_alias") == "FRAUD_SCORING_ALIAS"
    monkeypatch.setenv("FRAUD_SCORING_ALIAS", "challenger")
    assert settings.from_env("scoring_alias") == "challenger"
    merged = settings.with_env_fallback({"scoring_alias": None, "x": 1}, ("scoring_alias",))
    assert merged == {"scoring_alias": "challenger", "x": 1}
    # a dbt var that is set wins over the environment
    assert settings.with_env_fallback({"scoring_alias": "champion"}, ("scoring_alias",)) == {
        "scoring_alias": "champion"
    }


def test_one_latest_version_ignores_versions_not_ready() -> None:
    client = Registry({IF: {1: [], 3: []}})
    assert registry.latest_version(IF, client).version == "3"  # type: ignore[union-attr]
    assert registry.latest_version(RF, client) is None


def test_scoring_alias_means_the_same_to_scoring_and_monitoring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = Registry({RF: {1: ["champion"], 2: ["challenger"]}, IF: {5: ["champion"]}})
    for name in ("FRAUD_SCORING_ALIAS", "FRAUD_SCORING_MODEL_NAMES", "FRAUD_SCORING_MODEL_VERSION"):
        monkeypatch.delenv(name, raising=False)
    scored = resolve_scoring_model(ScoringSettings.from_mapping({}, "prod"), client)
    monitored = resolve_target(client, None, None)
    assert (scored.name, scored.version) == (RF, 1)
    assert (monitored.model_name, monitored.version) == (RF, "1")

    monkeypatch.setenv("FRAUD_SCORING_ALIAS", "challenger")
    scored = resolve_scoring_model(ScoringSettings.from_mapping({}, "prod"), client)
    monitored = resolve_target(client, None, None)
    assert (scored.name, scored.version, scored.alias) == (RF, 2, "challenger")
    assert (monitored.model_name, monitored.version, monitored.resolved_by) == (
        RF,
        "2",
        "challenger",
    )

    monkeypatch.setenv("FRAUD_SCORING_MODEL_NAMES", "isolation_forest")
    monkeypatch.setenv("FRAUD_SCORING_ALIAS", "champion")
    assert resolve_target(client, None, None).model_name == IF
    assert resolve_scoring_model(ScoringSettings.from_mapping({}, "prod"), client).name == IF
