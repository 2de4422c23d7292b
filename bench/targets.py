"""Results rows, the targets of targets.yml and their judgement."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.config import MIB, TARGETS_FILE, BenchInputError

# --------------------------------------------------------------------------------------------
# The orchestrator
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    part: str
    measurement: str
    seconds: float | None = None
    rows: int | None = None
    rows_per_s: float | None = None
    peak_rss_mib: float | None = None
    note: str = ""


@dataclass
class Target:
    name: str
    target: str
    measured: str
    met: bool | None
    limited_by: str = ""


@dataclass(frozen=True)
class TargetSpec:
    """One entry of bench/targets.yml: a bound (``min`` or ``max``) on one measurement."""

    key: str
    name: str
    target: str
    minimum: float | None = None
    maximum: float | None = None
    at_large_only: bool = False

    def judge(self, value: float, measured: str, limited_by: str, at_large: bool) -> Target:
        """The target row for ``value``; ``met`` is None when only a --large run judges it."""
        met: bool | None = None
        if at_large or not self.at_large_only:
            met = (self.minimum is None or value >= self.minimum) and (
                self.maximum is None or value <= self.maximum
            )
        return Target(self.name, self.target, measured, met, limited_by)


def load_targets(path: Path = TARGETS_FILE) -> dict[str, TargetSpec]:
    """The benchmark's targets, by key (a bad file is an error naming the file and key)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise BenchInputError(f"{path}: expected a mapping of targets")
    specs: dict[str, TargetSpec] = {}
    for key, entry in document.items():
        if not isinstance(entry, dict) or not {"name", "target"} <= set(entry):
            raise BenchInputError(f"{path}: target {key!r} needs 'name' and 'target'")
        if ("min" in entry) == ("max" in entry):
            raise BenchInputError(f"{path}: target {key!r} needs exactly one of 'min', 'max'")
        specs[str(key)] = TargetSpec(
            str(key),
            str(entry["name"]),
            str(entry["target"]),
            float(entry["min"]) if "min" in entry else None,
            float(entry["max"]) if "max" in entry else None,
            bool(entry.get("at_large_only", False)),
        )
    return specs


@dataclass
class Results:
    machine: dict[str, Any]
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""
    total_seconds: float = 0.0
    status: str = "ok"


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / MIB, 1)


def _incremental_limits(inc: Mapping[str, Any]) -> str:
    """What the incremental rebuild still recomputes, and what a retraining would add."""
    decisions = inc.get("training_decisions") or {}
    retrained = [m for m, d in decisions.items() if d.get("status") == "trained"]
    training = inc.get("full_build_training_node_seconds")
    text = (
        "dbt start-up, the silver merges, gold (one row per customer from all of silver), "
        "scoring of every customer and the data tests run over whole tables at every build"
    )
    if retrained:
        return text + "; retrained: " + ", ".join(retrained)
    if training:
        text += (
            f"; training was skipped by the retrain policy (data moved < retrain_min_data_change"
            f"): a rebuild that retrains (retrain_mode: always, or a larger change) adds about "
            f"the full build's {training:.0f} s of training node time"
        )
    return text


def _rate(rows: int | None, seconds: float | None) -> float | None:
    if not rows or not seconds:
        return None
    return rows / seconds
