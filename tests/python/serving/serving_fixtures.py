"""Shared fixtures of the serving tests (imported by the test modules: a conftest.py here would
shadow tests/python/conftest.py): one dbt build of the committed fixture in its own warehouse
and registry (``serving_build``), with the trained transaction classifier given @champion
there (nothing shared with other tests' registries), and the replayed online state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SMALL_BUILD_VARS, DbtProject

from ml.transaction_model import MODEL_NAME


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
