"""The two promotion operations, promote and rollback (README "Promotion and monitoring")."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ml import registry
from ml import warehouse as wh_mod
from ml.promotion.outcome import (
    NO_CANDIDATE,
    Outcome,
    PromotionError,
    audit_table,
    format_value,
    write_audit_row,
)
from ml.provenance import recorded_commit, utc_now
from ml.validation.gates import GateConfig, VersionInfo, evaluate_gates


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


def _decided_by(ctx: Context, config: GateConfig) -> dict[str, Any]:
    """What every decision records about who decided, when, with which code and gates."""
    return {
        "gate_config_version": config.version,
        "gate_config_path": config.path,
        "actor": ctx.actor,
        "decided_at": utc_now(),
        "git_commit": recorded_commit(),
        "dry_run": ctx.dry_run,
        "thresholds": {key: config.threshold(key) for key in ("precision", "recall", "f1")},
    }


def _open_audit(ctx: Context) -> tuple[wh_mod.Warehouse, str]:
    warehouse = wh_mod.connect(ctx.target, profiles_dir=ctx.profiles_dir)
    try:
        relation = audit_table(warehouse)
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


def _last_skip_reason(warehouse: wh_mod.Warehouse, name: str) -> str | None:
    """The newest skip_reason of the model's ``ml_models.<short>_training_runs`` table, or
    None when there is no such table or row (the reason is a courtesy, never required)."""
    table = name.rsplit(".", 1)[-1].removeprefix("fraud_detection_") + "_training_runs"
    try:
        rows = warehouse.query(
            f"select skip_reason from {warehouse.relation('ml_models', table)} "
            "where status = 'skipped' and run_id is null order by trained_at desc limit 1"
        )
    except Exception:
        return None
    return None if rows.empty else str(rows.iloc[0, 0])


def _no_candidate(ctx: Context) -> Outcome:
    """The decision when ``latest`` finds no registered version of a model the project trains
    (its training was skipped): nothing changes in the registry, exit 0, one audit row."""
    outcome = Outcome(
        decision=NO_CANDIDATE,
        model_name=ctx.model_name,
        candidate_version=None,
        previous_champion_version=None,
        new_champion_version=None,
        gates=[],
        **_decided_by(ctx, ctx.config),
        metrics={},
        notes="candidate: latest; no registered version (training skipped)",
    )
    if ctx.dry_run:
        return outcome
    warehouse, relation = _open_audit(ctx)
    with warehouse:
        reason = _last_skip_reason(warehouse, ctx.model_name)
        if reason:
            outcome.notes += f": {reason}"
        _record(ctx, outcome, warehouse, relation)
    return outcome


def promote(ctx: Context, spec: str) -> Outcome:
    client, name, config = ctx.client, ctx.model_name, ctx.config
    if (
        spec == "latest"
        and name in registry.MODEL_SHORT_NAMES.values()
        and registry.latest_version(name, client) is None
    ):
        return _no_candidate(ctx)
    version = registry.resolve_version_spec(client, name, spec)
    champion_version = registry.registered_aliases(client, name).get(registry.CHAMPION_ALIAS)
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
        **_decided_by(ctx, config),
        metrics=candidate.metrics,
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
        f"{gate.gate}={format_value(gate.value)} ({gate.threshold}) "
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
    aliases = registry.registered_aliases(client, name)
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
        **_decided_by(ctx, config),
        metrics=restored.metrics,
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
