"""The online path's feature windows (ml.serving.feature_spec) are the SQL model's: the Jinja
sets of models/gold/transaction_risk_features.sql and the YAML's meta.feature_columns. A window
changed in one place only fails here (and in the parity test)."""

from __future__ import annotations

import ast
import re

import yaml
from conftest import PROJECT_ROOT

from ml.serving import feature_spec as spec
from ml.transaction_model import FEATURE_COLUMNS

SQL = PROJECT_ROOT / "models" / "gold" / "transaction_risk_features.sql"
YAML = PROJECT_ROOT / "models" / "gold" / "_gold__transaction_risk_features.yml"


def jinja_set(name: str) -> object:
    match = re.search(r"\{%-?\s*set\s+" + name + r"\s*=\s*(.+?)\s*-?%\}", SQL.read_text())
    assert match, f"no `set {name}` in {SQL}"
    return ast.literal_eval(match.group(1))


def as_tuples(windows: tuple[spec.Window, ...]) -> list[tuple[str, int, str]]:
    return [(w.name, w.number, w.unit) for w in windows]


def test_windows_equal_the_sql_model() -> None:
    assert jinja_set("customer_windows") == as_tuples(spec.CUSTOMER_WINDOWS)
    assert jinja_set("merchant_windows") == as_tuples(spec.MERCHANT_WINDOWS)
    assert jinja_set("lookback_days") == spec.LOOKBACK_DAYS


def test_generated_names_equal_yaml_and_model_interface() -> None:
    model = yaml.safe_load(YAML.read_text())["models"][0]
    assert tuple(model["config"]["meta"]["feature_columns"]) == spec.feature_names()
    assert spec.feature_names() == FEATURE_COLUMNS
    documented = [c["name"] for c in model["columns"]]
    assert set(spec.feature_names()) <= set(documented)


def test_sql_uses_the_relative_and_distinct_windows() -> None:
    text = SQL.read_text()
    assert re.search(r"for name in \['7d', '30d'\]", text), "amount_to_customer_avg windows"
    assert spec.RELATIVE_AMOUNT_WINDOWS == ("7d", "30d")
    assert "extract(hour from customer_previous.transaction_at) < 6" in text
    assert spec.NIGHT_BEFORE_HOUR == 6
