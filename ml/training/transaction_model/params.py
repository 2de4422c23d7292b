"""Settings of the transaction classifier (dbt vars ``tc_<name>`` and ``card_precision_k``,
models/ml/_ml__models.yml; README "Settings"), validated when read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ml.training import params_coercion
from ml.training.params_coercion import is_unset

FAMILIES: tuple[str, ...] = ("lightgbm", "hist_gradient_boosting", "random_forest")


@dataclass(frozen=True)
class TransactionClassifierParams:
    """Model family, hyper-parameters and the time split (dbt vars ``tc_<name>``).

    The split, in days of ``transaction_at`` counted back from the newest transaction: the
    last ``test_days`` are the test window; before it a gap of ``gap_days`` (>= the label
    delay: those transactions are neither trained nor tested on); before the gap the training
    window, whose last ``validation_days`` choose the decision threshold (the model is fitted
    on the part before them). ``train_days`` caps the training window (None = all history).
    Training labels are those known by the cut-off (the start of the test window)."""

    family: str = "lightgbm"
    test_days: int = 14
    gap_days: int = 7
    validation_days: int = 7
    train_days: int | None = None
    label_delay_days: float = 7.0
    min_fraud_transactions: int = 50
    random_state: int = 42
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    max_depth: int | None = 10
    min_child_samples: int = 20
    # None: the threshold with the best F1 on the validation slice; a number pins it.
    decision_threshold: float | None = None
    n_jobs: int = 2

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"tc_family must be one of {FAMILIES}, got {self.family!r}")
        for name in ("test_days", "validation_days", "n_estimators", "num_leaves"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"tc_{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("gap_days", "label_delay_days", "min_fraud_transactions"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"tc_{name} must be >= 0, got {getattr(self, name)!r}")
        if self.gap_days < self.label_delay_days:
            raise ValueError(
                f"tc_gap_days ({self.gap_days}) must be >= the label delay "
                f"(tc_label_delay_days {self.label_delay_days}): the test window would see "
                "transactions whose labels the training could not have known"
            )
        if self.train_days is not None and self.train_days <= self.validation_days:
            raise ValueError(
                f"tc_train_days ({self.train_days}) must exceed tc_validation_days "
                f"({self.validation_days}): nothing would be left to fit on"
            )
        if not 0 < float(self.learning_rate) <= 1:
            raise ValueError(f"tc_learning_rate must be in (0, 1], got {self.learning_rate!r}")
        if self.decision_threshold is not None and not 0 < self.decision_threshold < 1:
            raise ValueError(
                f"tc_decision_threshold must be in (0, 1), got {self.decision_threshold!r}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> TransactionClassifierParams:
        return params_coercion.from_mapping(cls, values, "tc_")

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        return tuple(f"tc_{f.name}" for f in fields(cls))


DEFAULT_CARD_PRECISION_K = 100


def card_precision_k(values: Mapping[str, Any] | None) -> int:
    """var ``card_precision_k`` (cards reviewed per day), validated; default 100."""
    raw = (values or {}).get("card_precision_k")
    if is_unset(raw):
        return DEFAULT_CARD_PRECISION_K
    try:
        k = int(str(raw).strip())
    except ValueError as exc:
        raise ValueError(f"card_precision_k must be a positive integer, got {raw!r}") from exc
    if k < 1:
        raise ValueError(f"card_precision_k must be a positive integer, got {raw!r}")
    return k
