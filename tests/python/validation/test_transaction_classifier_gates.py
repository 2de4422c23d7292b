"""The transaction classifier's gate set in config/promotion_gates.yml: the seed's gates, the
ranking floors and the champion comparison; the customer models keep theirs."""

from __future__ import annotations

from conftest import PROJECT_ROOT

from ml import registry
from ml import transaction_model as tm
from ml.validation.gates import load_gate_config

GATES = PROJECT_ROOT / "config" / "promotion_gates.yml"


def test_transaction_classifier_gate_set() -> None:
    config = load_gate_config(GATES, tm.MODEL_NAME)
    bounds = {b.metric: b.minimum for b in config.metrics}
    assert bounds == {
        "precision": 0.85,
        "recall": 0.80,
        "f1": 0.82,
        "average_precision": 0.80,
        "card_precision_at_k": 0.015,
    }
    assert config.comparison.enabled and config.comparison.metric == "f1"
    assert {"model", "scaler", "classification_report.txt"} <= set(config.required_artifacts)


def test_customer_models_keep_the_seed_gates() -> None:
    for name in (registry.RANDOM_FOREST_MODEL, registry.ISOLATION_FOREST_MODEL):
        config = load_gate_config(GATES, name)
        assert {b.metric for b in config.metrics} == {"precision", "recall", "f1"}
