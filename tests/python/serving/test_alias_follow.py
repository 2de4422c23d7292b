"""The service follows the registry's aliases while it serves: a version given @challenger is
loaded, checked and then shadow-scores every request (its decisions logged beside the
champion's, off the reply path); moving @champion swaps the served version with no request
dropped or failed. Landed by dbt, both roles' decisions are in audit.model_predictions with
their role and latency, fraud-monitor counts the served versions' online decisions, and the
shadow report gives each role's latency. The aliases of the shared fixture registry are put
back afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pandas as pd
from serve_process import landing_body, running_server, serve_env
from serving_fixtures import serving_build  # noqa: F401

from ml.serving.shadow_report import LATENCY_SQL, PAIRS_SQL, compare, latency
from ml.transaction_model import MODEL_NAME

POLL_S = "1"


def wait_for(predicate, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_challenger_shadow_then_champion_swap_without_dropping(serving_build, tmp_path) -> None:  # noqa: F811
    client = serving_build.mlflow_client()
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    second = client.create_model_version(MODEL_NAME, champion.source, run_id=champion.run_id)
    rows = serving_build.query(
        "select * from silver.transactions_cleaned order by transaction_at desc limit 300"
    ).to_dict("records")
    # dated at the newest transaction: older ones are beyond the service's accepted lateness
    newest = pd.Timestamp(rows[0]["transaction_at"]).isoformat()
    results: list[tuple[int, int | None]] = []
    stop = threading.Event()
    try:
        env = serve_env(serving_build.env())
        with running_server(env, tmp_path, FRAUD_SERVE_ALIAS_POLL_SECONDS=POLL_S) as server:

            def traffic() -> None:
                n = 0
                while not stop.is_set():
                    body = landing_body(
                        rows[n % len(rows)], transaction_id=f"A-{n}", transaction_timestamp=newest
                    )
                    status, reply = server.request("POST", "/v1/score", body)
                    version = reply.get("model_version") if isinstance(reply, dict) else None
                    results.append((status, version))
                    n += 1

            thread = threading.Thread(target=traffic)
            thread.start()
            try:
                client.set_registered_model_alias(MODEL_NAME, "challenger", second.version)
                assert wait_for(
                    lambda: "challenger" in server.request("GET", "/readyz")[1]["models"]
                ), server.output()
                client.set_registered_model_alias(MODEL_NAME, "champion", second.version)
                assert wait_for(lambda: any(v == int(second.version) for _, v in results[-20:])), (
                    server.output()
                )
                time.sleep(1)
            finally:
                stop.set()
                thread.join(timeout=30)
            _, metrics = server.request("GET", "/metrics")
    finally:
        client.set_registered_model_alias(MODEL_NAME, "champion", champion.version)
        client.delete_registered_model_alias(MODEL_NAME, "challenger")
    assert results and all(status == 200 for status, _ in results), {s for s, _ in results}
    versions = [v for _, v in results]
    first_new = versions.index(int(second.version))
    assert set(versions[:first_new]) == {int(champion.version)}
    assert set(versions[first_new:]) == {int(second.version)}  # swapped once, never back
    assert "fraud_serve_model_swaps_total 2" in metrics  # challenger loaded, champion moved
    roles: dict[str, int] = {}
    for path in (tmp_path / "decisions").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            roles[record["role"]] = roles.get(record["role"], 0) + 1
    assert roles.get("champion", 0) == len(results)
    assert roles.get("challenger", 0) > 0
    # landed in audit, the comparison pairs the two roles: the challenger is the same model
    # (another version of one run), so every paired decision agrees exactly
    serving_build.run(
        "build",
        "--select",
        "decision_log_raw+",
        vars={"decision_log_path": str(tmp_path / "decisions")},
    )
    pairs = serving_build.query(
        PAIRS_SQL.format(predictions="audit.online_predictions", labels="silver.fraud_labels"),
        [pd.Timestamp("2000-01-01").to_pydatetime(), pd.Timestamp("2100-01-01").to_pydatetime()],
    )
    report = compare(pairs)
    assert report["pairs"] > 0 and report["agreement"] == 1.0
    assert report["max_score_difference"] == 0.0
    assert report["challenger_versions"] == [int(second.version)]
    # same model: the same card precision@k on every day
    assert report["champion_card_precision_at_k"] == report["challenger_card_precision_at_k"]
    decisions = serving_build.query(
        LATENCY_SQL.format(predictions="audit.online_predictions"),
        [pd.Timestamp("2000-01-01").to_pydatetime(), pd.Timestamp("2100-01-01").to_pydatetime()],
    )
    timing = latency(decisions)
    assert timing["champion"]["decisions"] == len(results)
    assert timing["challenger"]["decisions"] == roles["challenger"]
    for role in ("champion", "challenger"):
        assert 0 < timing[role]["p50_us"] <= timing[role]["p99_us"], timing

    # every decision of both roles is in audit.model_predictions, role and latency kept
    online = serving_build.query(
        "select model_role, model_version, decision_us from audit.model_predictions "
        "where entity_type = 'online_transaction'"
    )
    assert online.model_role.value_counts().to_dict() == roles
    assert (online.decision_us > 0).all()
    shadowed = online[online.model_role == "challenger"]
    assert set(shadowed.model_version) == {int(second.version)}
    # fraud-monitor on the second version (never batch-scored): its predictions are the online
    # decisions of that version, champion answers and shadow decisions together
    output = tmp_path / "monitoring"
    monitor = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml.monitoring.cli",
            "--target",
            "test",
            "--model",
            "transaction_classifier",
            "--version",
            str(second.version),
            "--days",
            "30",
            "--output",
            str(output),
        ],
        env=serving_build.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert monitor.returncode in (0, 1), monitor.stdout + monitor.stderr  # ok or a breach
    summary = json.loads((output / "summary.json").read_text())
    served = int((online.model_version == int(second.version)).sum())
    assert summary["metrics"]["total_predictions"] == served > 0, summary["metrics"]
