"""A promotion decision, its printed form and its row in audit.model_promotions."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ml import warehouse as wh_mod
from ml.validation.gates import Gate, is_finite

AUDIT_SCHEMA = "audit"
AUDIT_TABLE = "model_promotions"
LOCK_FILE = "promotion.lock"
DEFAULT_LOCK_TIMEOUT_S = 300.0
AUDIT_WRITE_ATTEMPTS = 5

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_ERROR = 2

# The decision when the model has no registered version to evaluate (its training was skipped,
# e.g. too few fraudulent customers): exit 0, recorded, scoring uses what exists.
NO_CANDIDATE = "no_candidate"

# audit.model_promotions: the columns promotion writes, in the order and with the generic types
# of the dbt contract (models/audit/_audit__models.yml; a test holds the two equal).
AUDIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("promotion_id", "text"),
    ("decided_at", "timestamp"),
    ("actor", "text"),
    ("model_name", "text"),
    ("candidate_version", "bigint"),
    ("previous_champion_version", "bigint"),
    ("new_champion_version", "bigint"),
    ("decision", "text"),
    ("gates_json", "text"),
    ("precision", "double"),
    ("precision_threshold", "double"),
    ("recall", "double"),
    ("recall_threshold", "double"),
    ("f1", "double"),
    ("f1_threshold", "double"),
    ("gate_config_version", "text"),
    ("git_commit", "text"),
    ("notes", "text"),
)


class PromotionError(Exception):
    """A user-facing error: exit code 2."""


# --------------------------------------------------------------------------------------------
# Outcome, output and audit
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    decision: str  # promoted | refused | rolled_back | no_candidate
    model_name: str
    candidate_version: int | None
    previous_champion_version: int | None
    new_champion_version: int | None
    gates: list[Gate]
    gate_config_version: str
    gate_config_path: str
    actor: str
    decided_at: datetime
    git_commit: str
    dry_run: bool
    metrics: dict[str, float]
    thresholds: dict[str, float | None]
    notes: str = ""
    promotion_id: str | None = None
    audit_relation: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_REFUSED if self.decision == "refused" else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "model_name": self.model_name,
            "candidate_version": self.candidate_version,
            "previous_champion_version": self.previous_champion_version,
            "new_champion_version": self.new_champion_version,
            "gates": [asdict(gate) for gate in self.gates],
            "gate_config_version": self.gate_config_version,
            "gate_config_path": self.gate_config_path,
            "actor": self.actor,
            "decided_at": self.decided_at.isoformat(),
            "git_commit": self.git_commit,
            "notes": self.notes,
            "promotion_id": self.promotion_id,
            "audit_relation": self.audit_relation,
        }

    def audit_row(self) -> dict[str, Any]:
        def metric(key: str) -> float | None:
            value = self.metrics.get(key)
            return value if is_finite(value) else None

        return {
            "promotion_id": self.promotion_id,
            "decided_at": self.decided_at.replace(tzinfo=None),  # UTC, naive: portable type
            "actor": self.actor,
            "model_name": self.model_name,
            "candidate_version": self.candidate_version,
            "previous_champion_version": self.previous_champion_version,
            "new_champion_version": self.new_champion_version,
            "decision": self.decision,
            "gates_json": json.dumps([asdict(gate) for gate in self.gates], sort_keys=True),
            "precision": metric("precision"),
            "precision_threshold": self.thresholds.get("precision"),
            "recall": metric("recall"),
            "recall_threshold": self.thresholds.get("recall"),
            "f1": metric("f1"),
            "f1_threshold": self.thresholds.get("f1"),
            "gate_config_version": self.gate_config_version,
            "git_commit": self.git_commit,
            "notes": self.notes,
        }


def format_value(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def gate_table(gates: Sequence[Gate]) -> str:
    """Plain-text table: gate | value | threshold | result."""
    rows = [("gate", "value", "threshold", "result")]
    for gate in gates:
        result = "pass" if gate.passed else "FAIL"
        if gate.detail:
            result += f" ({gate.detail})"
        rows.append((gate.gate, format_value(gate.value), gate.threshold, result))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _decision_line(outcome: Outcome) -> str:
    prefix = "DRY RUN, would be: " if outcome.dry_run else ""
    name, version = outcome.model_name, outcome.candidate_version
    if outcome.decision == "promoted":
        if outcome.previous_champion_version == version:
            text = f"promoted: {name} v{version} already is champion (registry unchanged)"
        else:
            before = outcome.previous_champion_version
            text = f"promoted: {name} v{version} is champion" + (
                f"; v{before} is previous" if before is not None else " (first champion)"
            )
    elif outcome.decision == NO_CANDIDATE:
        text = f"no candidate: {name} has no registered version; nothing to promote"
    elif outcome.decision == "rolled_back":
        text = (
            f"rolled_back: {name} v{version} is champion again; "
            f"v{outcome.previous_champion_version} rolled back"
        )
    else:
        failed = ", ".join(gate.gate for gate in outcome.gates if not gate.passed)
        current = outcome.new_champion_version
        text = f"refused: {name} v{version} failed {failed}; champion unchanged" + (
            f" (v{current})" if current is not None else " (none)"
        )
    return f"DECISION: {prefix}{text}"


def render_text(outcome: Outcome) -> str:
    lines = [
        f"model:       {outcome.model_name}",
        "candidate:   "
        + (f"v{version}" if (version := outcome.candidate_version) is not None else "none"),
        "champion:    "
        + (
            f"v{outcome.previous_champion_version}"
            if outcome.previous_champion_version is not None
            else "none"
        ),
        f"gate config: {outcome.gate_config_path} (version {outcome.gate_config_version})",
        "",
    ]
    if outcome.gates:
        lines += [gate_table(outcome.gates), ""]
    lines.append(_decision_line(outcome))
    if outcome.notes:
        lines.append(f"notes: {outcome.notes}")
    if outcome.audit_relation:
        lines.append(f"audit: row {outcome.promotion_id} in {outcome.audit_relation}")
    return "\n".join(lines)


def audit_table(warehouse: wh_mod.Warehouse) -> str:
    """The name of ``audit.model_promotions`` after checking it exists with every column.
    dbt owns the table (models/audit/model_promotions.sql); promotion only inserts."""
    relation = warehouse.relation(AUDIT_SCHEMA, AUDIT_TABLE)
    if not warehouse.table_exists(AUDIT_SCHEMA, AUDIT_TABLE):
        raise PromotionError(
            f"{relation} does not exist: run dbt build first (dbt creates it, "
            "models/audit/model_promotions.sql); nothing was changed in the registry"
        )
    existing = set(warehouse.query(f"select * from {relation} where 1 = 0").columns)
    missing = [name for name, _ in AUDIT_COLUMNS if name not in existing]
    if missing:
        raise PromotionError(f"{relation} exists without columns {missing}: fix its schema")
    return relation


def write_audit_row(warehouse: wh_mod.Warehouse, row: Mapping[str, Any]) -> None:
    """Append the row, retrying transient failures with backoff (remote warehouses)."""
    delay = 0.5
    for attempt in range(1, AUDIT_WRITE_ATTEMPTS + 1):
        try:
            warehouse.insert_row(AUDIT_SCHEMA, AUDIT_TABLE, row)
            return
        except Exception:
            if attempt == AUDIT_WRITE_ATTEMPTS:
                raise
            time.sleep(delay)
            delay *= 2
