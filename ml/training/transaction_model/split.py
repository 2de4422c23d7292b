"""The time-ordered split of the transaction classifier and its training labels: pure
functions on frames (no MLflow, no warehouse).

Windows, by ``transaction_at`` (days back from the newest transaction ``end``)::

    [fit ............ )[validation )[gap        )[test ............ end]
                                    ^ train_end  ^ cutoff = test_start

Fit on ``[train_start, validation_start)``, choose the threshold on ``[validation_start,
train_end)``, skip the gap (labels of those transactions are not yet known at the cut-off),
evaluate on ``[test_start, end]``. Training and validation labels are the fraud labels with
``label_known_at <= cutoff``: what the bank knows when it trains the model at ``cutoff``.
The test window is evaluated against the ground truth ``is_fraud``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.training.transaction_model.params import TransactionClassifierParams

DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class TimeSplit:
    """The window boundaries (half-open ``[start, end)``; the test window includes ``end``)."""

    train_start: pd.Timestamp
    validation_start: pd.Timestamp
    train_end: pd.Timestamp
    cutoff: pd.Timestamp
    end: pd.Timestamp

    def windows(self, at: pd.Series) -> pd.Series:
        """``'fit'``, ``'validation'``, ``'gap'``, ``'test'`` or ``'before'`` per timestamp."""
        at = pd.to_datetime(at)
        return pd.Series(
            np.select(
                [
                    at < self.train_start,
                    at < self.validation_start,
                    at < self.train_end,
                    at < self.cutoff,
                ],
                ["before", "fit", "validation", "gap"],
                default="test",
            ),
            index=at.index,
        )

    def as_params(self) -> dict[str, str]:
        return {f"split_{k}": str(v) for k, v in self.__dict__.items()}


class SplitError(ValueError):
    """The data's time span cannot hold the configured windows."""


def time_split(at: pd.Series, params: TransactionClassifierParams) -> TimeSplit:
    """Window boundaries for the transactions at ``at`` (see the module docstring). Raises
    :class:`SplitError` when the span is too short for fit + validation + gap + test."""
    if len(at) == 0:
        raise SplitError("no transactions to split")
    at = pd.to_datetime(at)
    first, end = at.min(), at.max()
    cutoff = end - params.test_days * DAY
    train_end = cutoff - params.gap_days * DAY
    validation_start = train_end - params.validation_days * DAY
    train_start = first if params.train_days is None else train_end - params.train_days * DAY
    train_start = max(train_start, first)
    if validation_start <= train_start:
        span = (end - first) / DAY
        raise SplitError(
            f"the data spans {span:.1f} days, too short for tc_validation_days "
            f"{params.validation_days} + tc_gap_days {params.gap_days} + tc_test_days "
            f"{params.test_days} and a fitting window before them"
        )
    return TimeSplit(train_start, validation_start, train_end, cutoff, end)


def known_labels(
    transaction_ids: pd.Series, labels: pd.DataFrame, cutoff: pd.Timestamp
) -> pd.Series:
    """True for a transaction with a fraud label known by ``cutoff``
    (``label_known_at <= cutoff``, silver.fraud_labels); aligned to ``transaction_ids``.
    A label that becomes known after the cut-off does not exist yet: the row counts as
    not (yet) reported, as it would for the bank."""
    known = labels.loc[pd.to_datetime(labels["label_known_at"]) <= cutoff, "transaction_id"]
    return transaction_ids.astype(str).isin(set(known.astype(str))).astype(bool)
