"""Test-window metrics of a transaction-level score: precision, recall, F1 at the threshold,
AUC-ROC, average precision (``ml.training.customer_models.steps.evaluation_metrics``, one
home) and card precision@k per day. Pure functions on arrays and frames."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.training.customer_models.steps import evaluation_metrics


@dataclass(frozen=True)
class CardPrecision:
    """``mean``: card precision@k averaged over the days; ``per_day``: one row per day (day,
    cards, reviewed, fraud_cards_reviewed, card_precision)."""

    k: int
    mean: float | None
    per_day: pd.DataFrame


def card_precision_at_k(
    day: Sequence[object] | pd.Series,
    card_id: Sequence[object] | pd.Series,
    score: Sequence[float] | np.ndarray,
    is_fraud: Sequence[bool] | np.ndarray,
    k: int,
) -> CardPrecision:
    """Card precision@k per day, as an investigation team reviewing ``k`` cards a day.

    For each day in order: the cards (``card_id``, here the customer) with a transaction that
    day, except cards already detected on an earlier day, are ranked by their highest
    transaction score of the day (ties: card id ascending); the top ``k`` are reviewed; the
    day's card precision is the share of the reviewed cards that had a fraudulent transaction
    that day (divided by the cards reviewed, ``min(k, cards)``, so a day with fewer than ``k``
    cards is not penalised). A reviewed card with a fraud that day counts as detected and is
    dropped from later days; a reviewed card without one is not. Days without any card to
    review are left out of the mean."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    frame = pd.DataFrame(
        {
            "day": pd.Series(day).to_numpy(),
            "card": pd.Series(card_id).astype(str).to_numpy(),
            "score": np.asarray(score, dtype="float64"),
            "fraud": np.asarray(is_fraud, dtype=bool),
        }
    )
    cards = (
        frame.groupby(["day", "card"], sort=True)
        .agg(score=("score", "max"), fraud=("fraud", "any"))
        .reset_index()
    )
    detected: set[str] = set()
    rows = []
    for value, group in cards.groupby("day", sort=True):
        candidates = group[~group["card"].isin(detected)]
        if candidates.empty:
            continue
        reviewed = candidates.sort_values(["score", "card"], ascending=[False, True]).head(k)
        hits = reviewed.loc[reviewed["fraud"], "card"]
        detected.update(hits)
        rows.append(
            {
                "day": value,
                "cards": len(candidates),
                "reviewed": len(reviewed),
                "fraud_cards_reviewed": len(hits),
                "card_precision": len(hits) / len(reviewed),
            }
        )
    per_day = pd.DataFrame(
        rows, columns=["day", "cards", "reviewed", "fraud_cards_reviewed", "card_precision"]
    )
    mean = float(per_day["card_precision"].mean()) if len(per_day) else None
    return CardPrecision(k, mean, per_day)


def transaction_metrics(
    frame: pd.DataFrame, score: np.ndarray, threshold: float, k: int
) -> tuple[dict[str, float | None], CardPrecision]:
    """Every test-window metric of a score on ``frame`` (columns ``customer_id``,
    ``transaction_at``, ``is_fraud``): the flag is ``score >= threshold``."""
    score = np.asarray(score, dtype="float64")
    y = frame["is_fraud"].to_numpy(dtype=bool)
    flagged = score >= threshold
    metrics = evaluation_metrics(y, flagged, score)
    days = pd.to_datetime(frame["transaction_at"]).dt.floor("D")
    cards = card_precision_at_k(days, frame["customer_id"], score, y, k)
    metrics["card_precision_at_k"] = cards.mean
    metrics["card_precision_k"] = float(k)
    metrics["decision_threshold"] = float(threshold)
    return metrics, cards
