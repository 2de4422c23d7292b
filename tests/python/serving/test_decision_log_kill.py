"""The decision log's flush policy under ``kill -9``, and its landing in audit: clients score
fixture transactions concurrently, the server is killed with SIGKILL mid-load, and every decision a
client got an
answer for is in the log (fsynced before the reply); what is lost is at most the requests in
flight, whose torn last line, if any, is the only line that is not valid JSON. Then dbt
(source decision_log → bronze.decision_log_raw → audit.online_predictions →
audit.model_predictions) lands every logged decision once, with its latency, after a build
killed between the two audit models and two more incremental runs, and the seed's monitoring
query counts them."""

from __future__ import annotations

import json
import signal
import threading
import time

from serve_process import landing_body, running_server, serve_env
from serving_fixtures import serving_build  # noqa: F401

CLIENTS = 8
BATCH_ROWS = (
    "from audit.model_predictions where coalesce(entity_type, 'customer') <> 'online_transaction'"
)


def test_kill_9_loses_nothing_acknowledged(serving_build, tmp_path) -> None:  # noqa: F811
    rows = serving_build.query(
        "select * from silver.transactions_cleaned order by transaction_at desc limit 400"
    ).to_dict("records")
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    env = serve_env(serving_build.env())
    with running_server(env, tmp_path) as server:

        def client(k: int) -> None:
            n = 0
            while not stop.is_set():
                row = rows[(k * 50 + n) % len(rows)]
                body = landing_body(row, transaction_id=f"K{k}-{n}")
                n += 1
                try:
                    status, reply = server.request("POST", "/v1/score", body, timeout=5)
                except OSError:
                    return  # the server is gone: this request was never acknowledged
                if status == 200:
                    with lock:
                        acknowledged.append(reply["transaction_id"])

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert len(acknowledged) > 50, "the load did not run"
    logged: set[str] = set()
    decision_ids: set[str] = set()
    torn = 0
    files = sorted((tmp_path / "decisions").glob("decisions-*.jsonl"))
    assert files
    for path in files:
        lines = path.read_bytes().split(b"\n")
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                assert i == len(lines) - 1, f"{path.name}: torn line {i} is not the last"
                torn += 1
                continue
            logged.add(record["transaction_id"])
            decision_ids.add(record["decision_id"])
            assert isinstance(record["decision_us"], int) and record["decision_us"] > 0, record
    missing = set(acknowledged) - logged
    assert not missing, f"{len(missing)} acknowledged decisions not in the log"
    # at most the in-flight requests (one per client) were logged without an answer
    assert len(logged) - len(set(acknowledged)) <= CLIENTS * 2
    assert torn <= 1

    # the log lands in audit.online_predictions through the dbt source and incremental models;
    # a second run adds nothing (every decision once), the torn line never
    log_vars = {"decision_log_path": str(tmp_path / "decisions")}
    batch_before = serving_build.query(f"select count(*) as n {BATCH_ROWS}")["n"].iloc[0]
    # first a build killed after audit.online_predictions appended, before
    # audit.model_predictions did (FRAUD_CRASH_AT=audit, ml.provenance.crash_point): the next
    # run catches the decisions up, and the one after adds nothing
    serving_build.extra_env["FRAUD_CRASH_AT"] = "audit"
    try:
        killed = serving_build.run(
            "build", "--select", "decision_log_raw+", vars=log_vars, check=False
        )
    finally:
        del serving_build.extra_env["FRAUD_CRASH_AT"]
    assert killed.returncode != 0, killed.stdout[-3000:]
    landed = serving_build.query(
        "select (select count(*) from audit.online_predictions) as online, "
        "(select count(*) from audit.model_predictions "
        "where entity_type = 'online_transaction') as audited"
    ).iloc[0]
    assert landed.online == len(decision_ids) and landed.audited == 0, dict(landed)
    serving_build.run("build", "--select", "decision_log_raw+", vars=log_vars)
    serving_build.run("build", "--select", "decision_log_raw+", vars=log_vars)
    audit = serving_build.query(
        "select transaction_id, model_role, reason_3, decision_us from audit.online_predictions"
    )
    assert len(audit) == len(logged) and set(audit.transaction_id) == logged
    assert set(audit.model_role) == {"champion"} and audit.reason_3.notna().all()
    assert (audit.decision_us > 0).all()

    # ... and in audit.model_predictions, once each (keyed by the decision id), beside the
    # batch scores, which the two runs left as they were
    online = serving_build.query(
        "select prediction_id, transaction_id, model_name, model_version, model_role, "
        "decision_us, selection, scoring_batch_id, confidence "
        "from audit.model_predictions where entity_type = 'online_transaction'"
    )
    assert len(online) == len(decision_ids) and set(online.prediction_id) == decision_ids
    assert set(online.transaction_id) == logged
    assert set(online.model_role) == {"champion"} and (online.decision_us > 0).all()
    assert online.scoring_batch_id.str.startswith("decisions-").all()
    assert online.confidence.between(0, 1).all() and online.selection.notna().all()
    batch_after = serving_build.query(f"select count(*) as n {BATCH_ROWS}")["n"].iloc[0]
    assert batch_after == batch_before
    # the seed's monitoring query (analyses/prediction_monitoring.sql, compiled by dbt) counts
    # the online decisions with the batch rows of the same model version
    serving_build.run("compile", "--select", "prediction_monitoring", vars=log_vars)
    compiled = next(serving_build.target_dir.rglob("analyses/prediction_monitoring.sql"))
    monitoring = serving_build.query(compiled.read_text())
    batch = serving_build.query(
        f"select model_name, model_version, count(*) as n {BATCH_ROWS} "
        "group by model_name, model_version"
    )
    served = online.groupby(["model_name", "model_version"]).size()
    assert len(served) > 0
    for (name, version), count in served.items():
        of_version = (monitoring.model_name == name) & (monitoring.model_version == version)
        total = monitoring[of_version].total_predictions.sum()
        batch_rows = batch[(batch.model_name == name) & (batch.model_version == version)].n.sum()
        assert total == batch_rows + count, (name, version, total, batch_rows, count)
