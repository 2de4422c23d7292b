"""ml.validation.gates: the versioned gate file and per-model overrides."""

from __future__ import annotations

from pathlib import Path

import yaml

from ml import registry, settings
from ml.validation import gates

RF = registry.RANDOM_FOREST_MODEL
IF = registry.ISOLATION_FOREST_MODEL
ALL_ARTIFACTS = ("model", "scaler", "classification_report.txt")


def test_gate_config_is_the_versioned_file() -> None:
    config = gates.load_gate_config(settings.PROMOTION_GATES_FILE, RF)
    assert config.version == "2026-12-01.1"
    assert config.threshold("precision") == 0.85
    assert config.threshold("recall") == 0.80
    assert config.threshold("f1") == 0.82
    assert config.required_artifacts == ALL_ARTIFACTS
    assert config.comparison.enabled and config.comparison.metric == "f1"
    assert config.comparison.max_regression == 0.02


def test_per_model_override(tmp_path: Path) -> None:
    document = {
        "version": 3,
        "defaults": {"metrics": {"f1": {"min": 0.8}}, "required_artifacts": ["model"]},
        "models": {"isolation_forest": {"metrics": {"f1": {"min": 0.3}}}},
    }
    path = tmp_path / "gates.yml"
    path.write_text(yaml.safe_dump(document))
    assert gates.load_gate_config(path, IF).threshold("f1") == 0.3
    assert gates.load_gate_config(path, RF).threshold("f1") == 0.8
    assert gates.load_gate_config(path, RF).version == "3"
