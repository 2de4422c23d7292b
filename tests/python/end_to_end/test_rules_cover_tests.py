"""Every domain a data test checks on silver/gold is also a validation rule (issue 11).

A value that fails an accepted_values or relationships test must be rejected by
silver.transactions_validated before it is merged, or the incremental tables wedge: the bad row
stays merged and every rerun fails the same test. This reads the dbt manifest and asserts, for
each such test on a silver or gold SQL model (the Python scoring model's tested columns are
computed by code, not delivered):

- it names the rule that keeps its failures out (config meta `enforced_by_rule`);
- the rule is a reason transactions_validated emits, and the unit test
  `transactions_validated_reasons` has a row that gets exactly that reason;
- a relationships test to a seed or model checks the same reference data the rule joins
  (transactions_validated depends on it);
- the accepted reasons of transactions_rejected.primary_rejection_reason are exactly the
  reasons the model emits (meta `enforced_by_rule: reason_list`).

    .venv/bin/pytest tests/python/test_rules_cover_tests.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT_ROOT, DbtProject

# Each validation model: its reasons are the `', <reason>'` literals of its SQL, proven by its
# reasons unit test. A domain test names its rule (meta enforced_by_rule) and, when the rule is
# not in transactions_validated, the model that emits it (meta validated_by).
VALIDATORS = {
    "transactions_validated": "transactions_validated_reasons",
    "fraud_reports_validated": "fraud_reports_validated_reasons",
}
DEFAULT_VALIDATOR = "transactions_validated"
# A key selected from the model its relationships test points at cannot be orphaned.
DERIVED = "derived_from_parent"
DOMAIN_TESTS = {"accepted_values", "relationships"}
CHECKED_LAYERS = {"silver", "gold"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = DbtProject(tmp_path_factory.mktemp("rules_manifest"))
    project.run("parse", "--no-partial-parse")
    return json.loads((project.root / "dbt_target" / "manifest.json").read_text())


def emitted_reasons(validator: str = DEFAULT_VALIDATOR) -> list[str]:
    """The reasons a validation model can emit, in order (`', <reason>'` literals, and the
    duplicate reason passed to the macro ``with_duplicate_reason('<reason>', ...)``)."""
    sql = (PROJECT_ROOT / "models" / "silver" / f"{validator}.sql").read_text()
    found = re.findall(r"', ([a-z_]+)'|with_duplicate_reason\(\s*'([a-z_]+)'", sql)
    return list(dict.fromkeys(literal or duplicate for literal, duplicate in found))


def domain_tests(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for node in manifest["nodes"].values():
        metadata = node.get("test_metadata") or {}
        if node["resource_type"] != "test" or metadata.get("name") not in DOMAIN_TESTS:
            continue
        attached = manifest["nodes"].get(node.get("attached_node") or "", {})
        # Python models (fraud_scores) compute their tested columns (risk band, selection) in
        # code from gold.transaction_features: their domains are code, not delivered values.
        if attached.get("fqn", [None, None])[1] in CHECKED_LAYERS and attached["language"] == "sql":
            found.append(node)
    return found


def unit_test_reasons(manifest: dict[str, Any], validator: str = DEFAULT_VALIDATOR) -> set[str]:
    unit = next(
        test for test in manifest["unit_tests"].values() if test["name"] == VALIDATORS[validator]
    )
    reasons: set[str] = set()
    for row in unit["expect"]["rows"]:
        if row.get("rejection_reasons"):
            reasons.update(part.strip() for part in row["rejection_reasons"].split(","))
    return reasons


def _relationship_target(test: dict[str, Any]) -> set[str]:
    return {p for p in test["depends_on"]["nodes"] if p != test.get("attached_node")}


def test_every_domain_test_names_a_rule_that_fires(manifest: dict[str, Any]) -> None:
    tests = domain_tests(manifest)
    assert len(tests) >= 8, "expected the currency/type/category/country/key tests"
    problems = []
    for test in tests:
        meta = test["config"].get("meta") or {}
        rule = meta.get("enforced_by_rule")
        validator = meta.get("validated_by", DEFAULT_VALIDATOR)
        label = f"{test['name']} ({test['original_file_path']})"
        if rule is None:
            problems.append(f"{label}: no meta enforced_by_rule")
            continue
        if rule == "reason_list":
            continue
        if rule == DERIVED:
            attached = manifest["nodes"][test["attached_node"]]
            if not _relationship_target(test) <= set(attached["depends_on"]["nodes"]):
                problems.append(f"{label}: {DERIVED}, but the model does not read its parent")
            continue
        if validator not in VALIDATORS:
            problems.append(f"{label}: unknown validation model {validator}")
            continue
        if rule not in emitted_reasons(validator):
            problems.append(f"{label}: rule {rule} is not emitted by {validator}")
        if rule not in unit_test_reasons(manifest, validator):
            problems.append(f"{label}: no unit test row gets {rule}")
        if test["test_metadata"]["name"] == "relationships":
            parents = set(
                manifest["nodes"][f"model.fraud_detection.{validator}"]["depends_on"]["nodes"]
            )
            target = _relationship_target(test)
            if not target <= parents | {"model.fraud_detection.transaction_features"}:
                problems.append(f"{label}: the rule does not join {sorted(target)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("validator", sorted(VALIDATORS))
def test_rejected_reason_list_is_exactly_what_validation_emits(
    manifest: dict[str, Any], validator: str
) -> None:
    test = next(
        node
        for node in domain_tests(manifest)
        if (node["config"].get("meta") or {}).get("enforced_by_rule") == "reason_list"
        and (node["config"].get("meta") or {}).get("validated_by", DEFAULT_VALIDATOR) == validator
    )
    accepted = test["test_metadata"]["kwargs"]["values"]
    assert accepted == emitted_reasons(validator)
    assert set(accepted) == unit_test_reasons(manifest, validator), (
        "every reason has a unit test row"
    )


def test_reasons_are_documented(manifest: dict[str, Any]) -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [reason for reason in emitted_reasons() if f"`{reason}`" not in readme]
    assert not missing, f"README's 'Nothing is silently dropped' lacks {missing}"
    assert Path(PROJECT_ROOT / "seeds" / "accepted_currencies.csv").exists()
