"""fraud-shadow-report's comparison on hand-built pairs."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.serving.shadow_report import compare


def test_compare_by_hand() -> None:
    pairs = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c", "d"],
            "champion_version": [1, 1, 1, 1],
            "challenger_version": [2, 2, 2, 2],
            "champion_score": [0.9, 0.8, 0.1, 0.2],
            "challenger_score": [0.9, 0.3, 0.7, 0.2],
            "champion_flagged": [True, True, False, False],
            "challenger_flagged": [True, False, True, False],
            "is_reported_fraud": [True, False, True, False],
        }
    )
    report = compare(pairs)
    assert report["pairs"] == 4 and report["agreement"] == 0.5
    assert report["champion_flag_rate"] == 0.5 and report["challenger_flag_rate"] == 0.5
    assert report["champion_precision"] == 0.5 and report["challenger_precision"] == 1.0
    assert report["champion_recall"] == 0.5 and report["challenger_recall"] == 1.0
    assert report["max_score_difference"] == pytest.approx(0.6)
    assert compare(pairs.iloc[:0]) == {"pairs": 0}
