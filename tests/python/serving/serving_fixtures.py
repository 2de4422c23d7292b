"""Shared fixtures of the serving tests (imported by the test modules: a conftest.py here would
shadow tests/python/conftest.py): one dbt build of the committed fixture in its own warehouse
and registry (``serving_build``), with the trained transaction classifier given @champion
there (nothing shared with other tests' registries), and the fixture replayed through an online
state (``replayed_features``, for any ``FeatureState``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import SMALL_BUILD_VARS, DbtProject

from ml.serving.bootstrap import replay, set_reference
from ml.serving.online_features import Transaction, compute_features
from ml.serving.state import FeatureState, ReportOutcome
from ml.transaction_model import FEATURE_COLUMNS, MODEL_NAME


@pytest.fixture(scope="session")
def serving_build(tmp_path_factory: pytest.TempPathFactory) -> DbtProject:
    project = DbtProject(tmp_path_factory.mktemp("serving_build"), dict(SMALL_BUILD_VARS))
    project.run("build")
    client = project.mlflow_client()
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert versions, "the fixture build registered no transaction classifier"
    latest = max(versions, key=lambda v: int(v.version))
    client.set_registered_model_alias(MODEL_NAME, "champion", latest.version)
    return project


@pytest.fixture
def serving_env(serving_build: DbtProject, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Env vars pointing a service (or in-process code) at the build's warehouse/registry."""
    for name, value in serving_build.env().items():
        monkeypatch.setenv(name, value)
    serving_build.mlflow_client()
    yield serving_build.root


def fixture_events(project: DbtProject, state: FeatureState) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference data set into ``state`` (customers, merchants); returns the transactions
    and the reports to replay (valid or duplicate, as the bootstrap reads them)."""
    transactions = project.query("select * from silver.transactions_cleaned")
    reports = project.query(
        "select transaction_id, reported_at from silver.fraud_reports_validated "
        "where rejection_reasons is null or rejection_reasons = 'duplicate_report'"
    )
    customers = project.query("select customer_id, created_date from silver.customers")
    merchants = project.query("select distinct merchant_id from bronze.merchants_raw")
    set_reference(state, customers, merchants)
    return transactions, reports


def replayed_features(
    project: DbtProject, state: FeatureState
) -> tuple[pd.DataFrame, list[ReportOutcome], FeatureState]:
    """The fixture's transactions and reports replayed in time order through ``state`` (the
    path requests take): each transaction's features just before it is added, the outcome of
    every report, and the state after."""
    transactions, reports = fixture_events(project, state)
    rows: dict[str, dict] = {}

    def before_add(txn: Transaction) -> None:
        rows[txn.transaction_id] = compute_features(txn, state.history(txn))

    _, outcomes = replay(state, transactions, reports, before_add)
    frame = pd.DataFrame.from_dict(rows, orient="index")[list(FEATURE_COLUMNS)]
    return frame, outcomes, state
