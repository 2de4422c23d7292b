"""ml.training.params_coercion: dbt vars (often rendered as text) to typed params."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ml.training.customer_models.params import RandomForestParams
from ml.training.params_coercion import coerce, from_mapping, is_unset
from ml.training.transaction_model.params import TransactionClassifierParams, card_precision_k


@pytest.mark.parametrize("value", [None, "", "  ", "none", "NULL", " None "])
def test_unset_values(value: object) -> None:
    assert is_unset(value)


@pytest.mark.parametrize("value", [0, False, "0", "auto", "[]"])
def test_set_values(value: object) -> None:
    assert not is_unset(value)


@pytest.mark.parametrize(
    ("value", "default", "expected"),
    [
        ("10", 5, 10),
        ("10.0", 5, 10),
        (10.0, 5, 10),
        ("0.25", 0.5, 0.25),
        ("auto", 1.0, "auto"),
        (" balanced ", "x", "balanced"),
        ("none", 7, 7),
        ("true", False, True),
        (0, True, False),
        ("[1, 2]", None, [1, 2]),
    ],
)
def test_coerce_casts_to_the_defaults_type(
    value: object, default: object, expected: object
) -> None:
    result = coerce(value, default)
    assert result == expected
    assert type(result) is type(expected)


@dataclass(frozen=True)
class _Params:
    depth: int = 3
    rate: float = 0.1
    name: str = "a"


def test_from_mapping_reads_prefixed_keys_only() -> None:
    params = from_mapping(
        _Params, {"x_depth": "4", "x_rate": None, "depth": 9, "x_name": "b"}, "x_"
    )
    assert params == _Params(depth=4, rate=0.1, name="b")
    assert from_mapping(_Params, None) == _Params()


def test_both_params_families_share_it() -> None:
    assert RandomForestParams.from_mapping({"rf_max_depth": "none"}).max_depth == 10
    assert RandomForestParams.from_mapping({"rf_n_estimators": "50"}).n_estimators == 50
    assert TransactionClassifierParams.from_mapping({"tc_family": "random_forest"}).family == (
        "random_forest"
    )
    assert card_precision_k({"card_precision_k": " null "}) == 100
