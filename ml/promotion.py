"""Promote a registered model version to ``champion`` behind versioned quality gates.

Usage::

    fraud-promote [--model NAME] [--candidate latest|N|ALIAS | --version N | --alias ALIAS]
                  [--dry-run] [--json] [--actor WHO] [--config FILE] [--target TARGET]
    fraud-promote --model NAME --rollback [--dry-run] [--json]
    python -m ml.promotion ...

``--model`` takes a full registered name or a short one (``random_forest``, the default, or
``isolation_forest``). The candidate is ``latest`` (highest READY version, the default), a
version number, or an alias such as ``challenger``.

Gates (``config/promotion_gates.yml``, whose ``version:`` is recorded with every decision):
minimum (or maximum) values of metrics of the candidate version's MLflow run (precision, recall,
f1), required run artifacts (a run artifact path, or an MLflow 3 logged model of that name linked
to the run), and an optional comparison with the current champion: the candidate may not be worse
than the champion on the primary metric by more than ``max_regression``.

Outcomes:

* pass: the candidate gets alias ``champion``; the former champion gets alias ``previous`` and tag
  ``archived_at``; the candidate gets tags ``promoted_at``, ``promoted_by``,
  ``gate_config_version`` and a description paragraph with the time and the gate results.
  A candidate that already is the champion is recorded as promoted without touching the registry.
* fail: the registry is not touched; the gate table says which gate failed.
* ``--rollback``: the ``previous`` version becomes ``champion`` again (tag ``restored_at``), the
  rolled-back version gets tag ``rolled_back_at``, and the ``previous`` alias is removed (a
  second rollback needs a new promotion first).
* ``--dry-run`` prints the decision and changes nothing (no alias, no tag, no audit row).

Registry stages are never used (Unity Catalog rejects them): aliases and tags only.

Every decision that is not a dry run appends one row to ``audit.model_promotions`` of the dbt
target's warehouse (created if missing, see ``AUDIT_COLUMNS``). The warehouse is opened (and the
table checked) before the registry is changed, so an unreachable warehouse changes nothing.

Concurrency: with a local registry (sqlite / file store) the whole read-decide-write sequence runs
under an exclusive ``fcntl`` lock on ``promotion.lock`` next to the registry database, so two
promotions started at once are serialised: exactly one champion, and the second decision sees
(and records as ``previous_champion_version``) the first one's champion. On Unity Catalog (or a
remote tracking server) there is no shared file to lock: setting an alias is a single atomic
server-side call (the alias moves, it is never on two versions), and the audit insert is retried
with backoff; the recorded ``previous_champion_version`` is then the champion read just before.

Exit codes: 0 promoted, rolled back, or dry run that would promote / roll back;
1 refused (a gate failed; nothing changed); 2 error (bad arguments, model / version / alias
missing, nothing to roll back to, registry or warehouse unreachable, lock timeout).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import getpass
import json
import math
import os
import re
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from ml import registry
from ml import warehouse as wh_mod

DEFAULT_CONFIG = registry.PROJECT_ROOT / "config" / "promotion_gates.yml"
AUDIT_SCHEMA = "audit"
AUDIT_TABLE = "model_promotions"
LOCK_FILE = "promotion.lock"
DEFAULT_LOCK_TIMEOUT_S = 300.0
AUDIT_WRITE_ATTEMPTS = 5

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_ERROR = 2

# audit.model_promotions: fixed column order and generic types (see ml.warehouse.SQL_TYPES).
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
_NOT_NULL = {"promotion_id", "decided_at", "model_name", "decision", "gate_config_version"}


class PromotionError(Exception):
    """A user-facing error: exit code 2."""


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
        raise PromotionError(f"gate config: {where} must be a number, got {value!r}")
    return float(value)


def load_gate_config(path: str | os.PathLike[str], model_name: str) -> GateConfig:
    """Read the gate file: ``defaults`` merged with ``models.<full or short name>``."""
    file = Path(path)
    try:
        document = wh_mod.load_yaml(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PromotionError(f"cannot read gate config {file}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PromotionError(f"gate config {file}: invalid YAML: {exc}") from exc
    if not isinstance(document, Mapping) or document.get("version") in (None, ""):
        raise PromotionError(f"gate config {file}: a top-level 'version:' key is required")
    section: dict[str, Any] = dict(document.get("defaults") or {})
    overrides = document.get("models") or {}
    keys = [short for short, full in registry.MODEL_SHORT_NAMES.items() if full == model_name]
    for key in [*keys, model_name]:
        if isinstance(overrides.get(key), Mapping):
            section = _merge(section, overrides[key])
    metrics: list[MetricBound] = []
    for metric, bound in (section.get("metrics") or {}).items():
        if not isinstance(bound, Mapping) or not ({"min", "max"} & set(bound)):
            raise PromotionError(f"gate config: metrics.{metric} needs 'min' and/or 'max'")
        minimum = _number(bound["min"], f"{metric}.min") if "min" in bound else None
        maximum = _number(bound["max"], f"{metric}.max") if "max" in bound else None
        metrics.append(MetricBound(str(metric), minimum, maximum))
    artifacts = section.get("required_artifacts") or []
    if not isinstance(artifacts, list) or not all(isinstance(a, str) for a in artifacts):
        raise PromotionError("gate config: required_artifacts must be a list of paths")
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
# Registry look-ups
# --------------------------------------------------------------------------------------------


@dataclass
class VersionInfo:
    """What the gates need to know about one model version."""

    name: str
    version: int
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: set[str] = field(default_factory=set)


def name_filter(name: str) -> str:
    """An MLflow search filter for one model name (quoted so a quote in the name is safe)."""
    if "'" not in name:
        return f"name = '{name}'"
    if '"' not in name:
        return f'name = "{name}"'
    raise PromotionError(f"model name {name!r} contains both quote characters; not supported")


def registered_aliases(client: Any, name: str) -> dict[str, int]:
    """``{alias: version}`` of a registered model (PromotionError when it does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise PromotionError(f"registered model {name!r} not found in the registry") from exc
        raise
    return {str(alias): int(version) for alias, version in (model.aliases or {}).items()}


def latest_version(client: Any, name: str) -> int | None:
    versions = client.search_model_versions(name_filter(name))
    ready = [int(v.version) for v in versions if str(v.status or "READY") == "READY"]
    return max(ready) if ready else None


def resolve_candidate(client: Any, name: str, spec: str) -> int:
    """Version number for ``latest``, ``N`` or an alias name (the model must exist)."""
    from mlflow.exceptions import MlflowException

    aliases = registered_aliases(client, name)
    if spec == "latest":
        version = latest_version(client, name)
        if version is None:
            raise PromotionError(f"model {name!r} has no READY version")
        return version
    if spec.isdigit():
        try:
            client.get_model_version(name, spec)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise PromotionError(f"model {name!r} has no version {spec}") from exc
            raise
        return int(spec)
    if spec in aliases:
        return aliases[spec]
    known = ", ".join(sorted(aliases)) or "none"
    raise PromotionError(f"model {name!r} has no alias {spec!r} (aliases: {known})")


def _artifact_paths(client: Any, run_id: str, wanted: Sequence[str]) -> set[str]:
    """Which of ``wanted`` exist as run artifacts (top level or nested paths)."""
    found: set[str] = set()
    listed: dict[str, set[str]] = {}
    for path in wanted:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent not in listed:
            entries = client.list_artifacts(run_id, parent or None)
            listed[parent] = {entry.path for entry in entries}
        if path in listed[parent]:
            found.add(path)
    return found


def _logged_model_names(client: Any, experiment_id: str, run_id: str) -> set[str]:
    """Names of MLflow 3 logged models (``log_model(name=...)``) whose source is the run."""
    if not re.fullmatch(r"[0-9A-Za-z_-]+", run_id):
        return set()
    try:
        models = client.search_logged_models(
            experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
    except Exception:  # stores without logged models (older servers): run artifacts only
        return set()
    return {str(model.name) for model in models}


def version_info(client: Any, name: str, version: int, artifacts: Sequence[str]) -> VersionInfo:
    """Metrics and the presence of ``artifacts`` for one version (via its source run)."""
    from mlflow.exceptions import MlflowException

    model_version = client.get_model_version(name, str(version))
    info = VersionInfo(name, version, model_version.run_id or None)
    if not info.run_id:
        return info
    try:
        run = client.get_run(info.run_id)
    except MlflowException as exc:
        raise PromotionError(
            f"run {info.run_id} of {name} version {version} not found: {exc.message}"
        ) from exc
    info.metrics = {key: float(value) for key, value in run.data.metrics.items()}
    if artifacts:
        present = _artifact_paths(client, info.run_id, artifacts)
        missing = [path for path in artifacts if path not in present]
        if missing:
            present |= _logged_model_names(client, run.info.experiment_id, info.run_id) & set(
                missing
            )
        info.artifacts = present
    return info


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


def _finite(value: float | None) -> bool:
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
        if not _finite(value):
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
            if not _finite(reference):
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
                ok = _finite(value) and value is not None and value >= floor - 1e-12
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


# --------------------------------------------------------------------------------------------
# Outcome, output and audit
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    decision: str  # promoted | refused | rolled_back
    model_name: str
    candidate_version: int
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
            return value if _finite(value) else None

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


def _format_value(value: float | str | None) -> str:
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
        rows.append((gate.gate, _format_value(gate.value), gate.threshold, result))
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
        f"candidate:   v{outcome.candidate_version}",
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


def ensure_audit_table(warehouse: wh_mod.Warehouse) -> str:
    """Create ``audit.model_promotions`` if missing and check its columns; return its name."""
    relation = warehouse.relation(AUDIT_SCHEMA, AUDIT_TABLE)
    warehouse.create_schema(AUDIT_SCHEMA)
    columns = ",\n    ".join(
        f"{warehouse.quote(name)} {warehouse.sql_type(kind)}"
        + (" not null" if name in _NOT_NULL else "")
        for name, kind in AUDIT_COLUMNS
    )
    warehouse.execute(f"create table if not exists {relation} (\n    {columns}\n)")
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


# --------------------------------------------------------------------------------------------
# Locking, identity, provenance
# --------------------------------------------------------------------------------------------


def local_lock_path(registry_uri: str) -> Path | None:
    """``promotion.lock`` beside a local registry (sqlite / file store); None when remote."""
    parsed = urlparse(registry_uri)
    if parsed.scheme == "sqlite":
        database = unquote(registry_uri.split(":///", 1)[1]) if ":///" in registry_uri else ""
        if not database or database == ":memory:":
            return None
        return Path(database).resolve().parent / LOCK_FILE
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path)).resolve() / LOCK_FILE
    return None


@contextlib.contextmanager
def registry_lock(path: Path | None, timeout: float) -> Iterator[Path | None]:
    """Exclusive fcntl lock on ``path`` (no-op for None), waiting up to ``timeout`` seconds."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() > deadline:
                    raise PromotionError(
                        f"another promotion holds {path}; gave up after {timeout:g} s"
                    ) from exc
                if not announced:
                    print(f"waiting for the promotion lock {path}", file=sys.stderr)
                    announced = True
                time.sleep(0.05)
        try:
            yield path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def default_actor() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def git_commit() -> str:
    """HEAD of the project (``+dirty`` with uncommitted changes); ``FRAUD_GIT_COMMIT`` wins."""
    if os.environ.get("FRAUD_GIT_COMMIT"):
        return os.environ["FRAUD_GIT_COMMIT"]
    head = registry.git_commit()
    if head == "unknown":
        return head
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=registry.PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return head
    return f"{head}+dirty" if dirty else head


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# The two operations
# --------------------------------------------------------------------------------------------


@dataclass
class Context:
    client: Any
    model_name: str
    config: GateConfig
    actor: str
    dry_run: bool
    target: str | None
    profiles_dir: str | None


def _open_audit(ctx: Context) -> tuple[wh_mod.Warehouse, str]:
    warehouse = wh_mod.connect(ctx.target, profiles_dir=ctx.profiles_dir)
    try:
        relation = ensure_audit_table(warehouse)
    except Exception:
        warehouse.close()
        raise
    return warehouse, relation


def _record(ctx: Context, outcome: Outcome, warehouse: wh_mod.Warehouse, relation: str) -> None:
    outcome.promotion_id = str(uuid.uuid4())
    outcome.audit_relation = relation
    row = outcome.audit_row()
    try:
        write_audit_row(warehouse, row)
    except Exception as exc:
        payload = json.dumps(row, default=str, sort_keys=True)
        raise PromotionError(
            f"the registry was changed ({outcome.decision}) but the audit row could not be "
            f"written to {relation}: {exc}. Insert this row by hand: {payload}"
        ) from exc


def promote(ctx: Context, spec: str) -> Outcome:
    client, name, config = ctx.client, ctx.model_name, ctx.config
    version = resolve_candidate(client, name, spec)
    champion_version = registered_aliases(client, name).get(registry.CHAMPION_ALIAS)
    candidate = version_info(client, name, version, config.required_artifacts)
    champion = None
    if champion_version is not None and champion_version != version:
        champion = version_info(client, name, champion_version, ())
    elif champion_version == version:
        champion = candidate
    gates = evaluate_gates(config, candidate, champion)
    passed = all(gate.passed for gate in gates)
    already = champion_version == version
    notes = f"candidate: {spec}"
    if already:
        notes += (
            "; candidate already is champion, registry unchanged"
            if passed
            else "; candidate is the current champion and fails the gates now: it stays champion"
        )
    outcome = Outcome(
        decision="promoted" if passed else "refused",
        model_name=name,
        candidate_version=version,
        previous_champion_version=champion_version,
        new_champion_version=version if passed else champion_version,
        gates=gates,
        gate_config_version=config.version,
        gate_config_path=config.path,
        actor=ctx.actor,
        decided_at=_utc_now(),
        git_commit=git_commit(),
        dry_run=ctx.dry_run,
        metrics=candidate.metrics,
        thresholds={key: config.threshold(key) for key in ("precision", "recall", "f1")},
        notes=notes,
    )
    if ctx.dry_run:
        return outcome
    warehouse, relation = _open_audit(ctx)
    with warehouse:
        if passed and not already:
            _apply_promotion(client, outcome)
        _record(ctx, outcome, warehouse, relation)
    return outcome


def _apply_promotion(client: Any, outcome: Outcome) -> None:
    name, version = outcome.model_name, str(outcome.candidate_version)
    stamp = outcome.decided_at.isoformat()
    old = outcome.previous_champion_version
    # `previous` first: a crash between the two calls leaves previous == champion, never a gap.
    if old is not None:
        client.set_registered_model_alias(name, registry.PREVIOUS_ALIAS, str(old))
        client.set_model_version_tag(name, str(old), "archived_at", stamp)
    client.set_registered_model_alias(name, registry.CHAMPION_ALIAS, version)
    client.set_model_version_tag(name, version, "promoted_at", stamp)
    client.set_model_version_tag(name, version, "promoted_by", outcome.actor)
    client.set_model_version_tag(name, version, "gate_config_version", outcome.gate_config_version)
    results = "; ".join(
        f"{gate.gate}={_format_value(gate.value)} ({gate.threshold}) "
        + ("pass" if gate.passed else "fail")
        for gate in outcome.gates
    )
    paragraph = (
        f"Promoted to champion at {stamp} by {outcome.actor} "
        f"(gate config {outcome.gate_config_version}, git {outcome.git_commit}): {results}."
    )
    current = client.get_model_version(name, version).description or ""
    description = f"{current.rstrip()}\n\n{paragraph}" if current.strip() else paragraph
    client.update_model_version(name, version, description=description)


def rollback(ctx: Context) -> Outcome:
    client, name, config = ctx.client, ctx.model_name, ctx.config
    aliases = registered_aliases(client, name)
    previous = aliases.get(registry.PREVIOUS_ALIAS)
    current = aliases.get(registry.CHAMPION_ALIAS)
    if previous is None:
        raise PromotionError(
            f"model {name!r} has no '{registry.PREVIOUS_ALIAS}' version: nothing to roll back to"
        )
    if previous == current:
        raise PromotionError(
            f"model {name!r}: '{registry.PREVIOUS_ALIAS}' and '{registry.CHAMPION_ALIAS}' both "
            f"point to v{current}: nothing to roll back"
        )
    restored = version_info(client, name, previous, ())
    outcome = Outcome(
        decision="rolled_back",
        model_name=name,
        candidate_version=previous,
        previous_champion_version=current,
        new_champion_version=previous,
        gates=[],
        gate_config_version=config.version,
        gate_config_path=config.path,
        actor=ctx.actor,
        decided_at=_utc_now(),
        git_commit=git_commit(),
        dry_run=ctx.dry_run,
        metrics=restored.metrics,
        thresholds={key: config.threshold(key) for key in ("precision", "recall", "f1")},
        notes=f"rollback of v{current}" if current is not None else "rollback (no champion)",
    )
    if ctx.dry_run:
        return outcome
    warehouse, relation = _open_audit(ctx)
    with warehouse:
        stamp = outcome.decided_at.isoformat()
        client.set_registered_model_alias(name, registry.CHAMPION_ALIAS, str(previous))
        client.set_model_version_tag(name, str(previous), "restored_at", stamp)
        if current is not None:
            client.set_model_version_tag(name, str(current), "rolled_back_at", stamp)
        client.delete_registered_model_alias(name, registry.PREVIOUS_ALIAS)
        _record(ctx, outcome, warehouse, relation)
    return outcome


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraud-promote",
        description="Promote a registered model version to champion behind quality gates, or "
        "roll back to the previous champion. Every decision (not dry runs) is appended to "
        "audit.model_promotions in the dbt target's warehouse.",
        epilog="exit codes: 0 promoted / rolled back (or would be, with --dry-run); "
        "1 refused: a gate failed, nothing changed; 2 error: bad arguments, model / version / "
        "alias missing, nothing to roll back to, registry or warehouse unreachable.",
    )
    parser.add_argument(
        "--model",
        default=registry.RANDOM_FOREST_MODEL,
        help="registered model name or short name random_forest / isolation_forest "
        "(default: random_forest)",
    )
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument(
        "--candidate", metavar="SPEC", help="'latest' (default), a version number or an alias"
    )
    pick.add_argument("--version", type=int, metavar="N", help="candidate version number")
    pick.add_argument("--alias", metavar="ALIAS", help="candidate alias, e.g. challenger")
    pick.add_argument(
        "--rollback",
        action="store_true",
        help="make the 'previous' version champion again instead of promoting",
    )
    parser.add_argument("--dry-run", action="store_true", help="decide and print; change nothing")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument("--actor", help="who decides (default: $USER)")
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="gate file (default: %(default)s)"
    )
    parser.add_argument("--target", help="dbt target of the audit warehouse (default: DBT_TARGET)")
    parser.add_argument("--profiles-dir", help="folder of profiles.yml (default: dbt's lookup)")
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=DEFAULT_LOCK_TIMEOUT_S,
        help="seconds to wait for a concurrent promotion (default: %(default)s)",
    )
    return parser


def _candidate_spec(args: argparse.Namespace) -> str:
    if args.version is not None:
        return str(args.version)
    if args.alias:
        return str(args.alias)
    return str(args.candidate or "latest").strip()


def _fail(message: str, as_json: bool) -> int:
    print(f"fraud-promote: error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"decision": None, "error": message, "exit_code": EXIT_ERROR}))
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``fraud-promote``; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    model_name = registry.resolve_model_name(args.model)
    try:
        config = load_gate_config(args.config, model_name)
        settings = registry.configure()
        import mlflow

        ctx = Context(
            client=mlflow.MlflowClient(),
            model_name=model_name,
            config=config,
            actor=args.actor or default_actor(),
            dry_run=args.dry_run,
            target=args.target,
            profiles_dir=args.profiles_dir,
        )
        lock_path = None if args.dry_run else local_lock_path(settings.registry_uri)
        with registry_lock(lock_path, args.lock_timeout):
            outcome = rollback(ctx) if args.rollback else promote(ctx, _candidate_spec(args))
    except (PromotionError, wh_mod.WarehouseError) as exc:
        return _fail(str(exc), args.json)
    except Exception as exc:  # registry unreachable, driver errors, ...
        if os.environ.get("FRAUD_DEBUG"):
            traceback.print_exc()
        return _fail(f"{type(exc).__name__}: {exc}", args.json)
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(render_text(outcome))
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
