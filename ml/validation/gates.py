"""Promotion gates: their configuration (config/promotion_gates.yml) and evaluation
against a candidate and the current champion (README "Promotion and monitoring").
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ml import registry
from ml import warehouse as wh_mod


class GateConfigError(Exception):
    """An unreadable or invalid gate configuration (fraud-promote exits 2)."""


@dataclass
class VersionInfo:
    """What the gates need to know about one model version."""

    name: str
    version: int
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------------------------
# Gate configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricBound:
    metric: str
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class ChampionComparison:
    enabled: bool = False
    metric: str = "f1"
    max_regression: float = 0.0


@dataclass(frozen=True)
class GateConfig:
    version: str
    path: str
    metrics: tuple[MetricBound, ...]
    required_artifacts: tuple[str, ...]
    comparison: ChampionComparison

    def threshold(self, metric: str) -> float | None:
        for bound in self.metrics:
            if bound.metric == metric:
                return bound.minimum
        return None


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GateConfigError(f"gate config: {where} must be a number, got {value!r}")
    return float(value)


def load_gate_config(path: str | os.PathLike[str], model_name: str) -> GateConfig:
    """Read the gate file: ``defaults`` merged with ``models.<full or short name>``."""
    file = Path(path)
    try:
        document = wh_mod.load_yaml(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GateConfigError(f"cannot read gate config {file}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise GateConfigError(f"gate config {file}: invalid YAML: {exc}") from exc
    if not isinstance(document, Mapping) or document.get("version") in (None, ""):
        raise GateConfigError(f"gate config {file}: a top-level 'version:' key is required")
    section: dict[str, Any] = dict(document.get("defaults") or {})
    overrides = document.get("models") or {}
    keys = [short for short, full in registry.MODEL_SHORT_NAMES.items() if full == model_name]
    for key in [*keys, model_name]:
        if isinstance(overrides.get(key), Mapping):
            section = _merge(section, overrides[key])
    metrics: list[MetricBound] = []
    for metric, bound in (section.get("metrics") or {}).items():
        if not isinstance(bound, Mapping) or not ({"min", "max"} & set(bound)):
            raise GateConfigError(f"gate config: metrics.{metric} needs 'min' and/or 'max'")
        minimum = _number(bound["min"], f"{metric}.min") if "min" in bound else None
        maximum = _number(bound["max"], f"{metric}.max") if "max" in bound else None
        metrics.append(MetricBound(str(metric), minimum, maximum))
    artifacts = section.get("required_artifacts") or []
    if not isinstance(artifacts, list) or not all(isinstance(a, str) for a in artifacts):
        raise GateConfigError("gate config: required_artifacts must be a list of paths")
    raw_cmp = section.get("champion_comparison") or {}
    comparison = ChampionComparison(
        enabled=bool(raw_cmp.get("enabled", False)),
        metric=str(raw_cmp.get("metric", "f1")),
        max_regression=_number(raw_cmp.get("max_regression", 0.0), "max_regression"),
    )
    return GateConfig(
        str(document["version"]), str(file), tuple(metrics), tuple(artifacts), comparison
    )


# --------------------------------------------------------------------------------------------
# Gates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """One gate result, as printed and as stored in ``gates_json``."""

    gate: str
    value: float | str | None
    threshold: str
    passed: bool
    detail: str = ""


def is_finite(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def evaluate_gates(
    config: GateConfig, candidate: VersionInfo, champion: VersionInfo | None
) -> list[Gate]:
    gates: list[Gate] = []
    for bound in config.metrics:
        value = candidate.metrics.get(bound.metric)
        parts = []
        if bound.minimum is not None:
            parts.append(f">= {bound.minimum:g}")
        if bound.maximum is not None:
            parts.append(f"<= {bound.maximum:g}")
        threshold = " and ".join(parts)
        if not is_finite(value):
            detail = "no run linked to the version" if not candidate.run_id else "metric missing"
            gates.append(Gate(bound.metric, None, threshold, False, detail))
            continue
        assert value is not None
        ok = (bound.minimum is None or value >= bound.minimum) and (
            bound.maximum is None or value <= bound.maximum
        )
        gates.append(Gate(bound.metric, value, threshold, ok))
    for path in config.required_artifacts:
        present = path in candidate.artifacts
        gates.append(
            Gate(f"artifact:{path}", "present" if present else "missing", "required", present)
        )
    comparison = config.comparison
    if comparison.enabled:
        gate_name = f"vs_champion:{comparison.metric}"
        value = candidate.metrics.get(comparison.metric)
        if champion is None:
            gates.append(Gate(gate_name, value, "no champion", True, "first promotion"))
        elif champion.version == candidate.version:
            gates.append(Gate(gate_name, value, "candidate is champion", True, "skipped"))
        else:
            reference = champion.metrics.get(comparison.metric)
            if not is_finite(reference):
                gates.append(
                    Gate(
                        gate_name,
                        value,
                        f"champion v{champion.version} has no {comparison.metric}",
                        True,
                        "not comparable",
                    )
                )
            else:
                assert reference is not None
                floor = reference - comparison.max_regression
                ok = is_finite(value) and value is not None and value >= floor - 1e-12
                gates.append(
                    Gate(
                        gate_name,
                        value,
                        f">= {floor:.4f} (champion v{champion.version} "
                        f"{reference:.4f} - {comparison.max_regression:g})",
                        bool(ok),
                    )
                )
    return gates
