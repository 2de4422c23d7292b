"""``fraud-serve --workers 2`` with Redis state, as real processes on loopback (a redis-server of
its own, the fixture build's warehouse and registry): both workers answer (their pids in
/readyz), transactions scored through one worker are in the history the other one sees (the
features in each worker's decision log), reports are shared (the first accepted, the rest
duplicates, whichever worker takes them; the label counts for the merchant's next
transaction), and SIGTERM stops the parent and every worker; a worker's death stops the
service. Plus the settings: a bad state
URL, several workers without Redis, and an unreachable Redis are refused naming the variable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import psutil
import pytest
from redis_process import redis_url  # noqa: F401
from serve_process import BIN, Server, free_port, landing_body, running_server, serve_env
from serving_fixtures import serving_build  # noqa: F401

from ml.serving.config import ServeSettings, SettingError

STEP_S = 1


def logged(folder: Path) -> dict[str, tuple[int, dict]]:
    """transaction_id -> (pid of the worker that logged it, features), champion lines."""
    out: dict[str, tuple[int, dict]] = {}
    for path in sorted(folder.glob("decisions-*.jsonl")):
        pid = int(path.stem.split("-")[-2])
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["role"] == "champion":
                out.setdefault(row["transaction_id"], (pid, row["features"]))
    return out


def score(server: Server, body: dict) -> None:
    status, reply = server.request("POST", "/v1/score", body)
    assert status == 200, reply


def worker_pids(server: Server, expected: int) -> set[int]:
    """The pids answering /readyz (the kernel gives each new connection to one worker)."""
    seen: set[int] = set()
    for _ in range(60):
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: server.request("GET", "/readyz"), range(16)))
        seen |= {body["pid"] for status, body in replies if status == 200}
        if len(seen) >= expected:
            break
    return seen


def test_two_workers_share_the_redis_state(serving_build, redis_url, tmp_path) -> None:  # noqa: F811
    newest = serving_build.query(
        "select * from silver.transactions_cleaned order by transaction_at desc limit 1"
    ).to_dict("records")[0]
    base = pd.Timestamp(newest["transaction_at"]) + pd.Timedelta(minutes=1)
    env = serve_env(serving_build.env())
    decisions = tmp_path / "decisions"
    settings = {
        "FRAUD_SERVE_STATE": redis_url,
        "FRAUD_SERVE_STATE_PREFIX": "serve-workers",
        "FRAUD_SERVE_WORKERS": "2",
        "FRAUD_SERVE_LOG_SYNC": "write",
    }
    with running_server(env, tmp_path, **settings) as server:
        parent = psutil.Process(server.process.pid)
        pids = worker_pids(server, 2)
        assert len(pids) == 2, f"both workers answer /readyz: {pids}\n{server.output()}"
        family = parent.children(recursive=True)
        assert pids <= {p.pid for p in family}
        status, ready = server.request("GET", "/readyz")
        assert ready["state"]["transactions"] >= 8000  # bootstrapped once, into Redis

        # sequential transactions of one customer: each sees all earlier ones, whichever
        # worker scored them
        def body(i: int, tid: str) -> dict:
            at = base + pd.Timedelta(seconds=i * STEP_S)
            return landing_body(
                newest, transaction_id=tid, transaction_timestamp=at.isoformat(), amount=12.5
            )

        ids = [f"W-{i}" for i in range(12)]
        for i, tid in enumerate(ids):
            score(server, body(i, tid))
        lines = logged(decisions)
        counts = [lines[t][1]["customer_txn_count_1h"] for t in ids]
        assert counts == [counts[0] + i for i in range(len(ids))], counts
        # one probe (same id and time: scored again, counted once) sent until both workers
        # answered it: each sees all 12, so each sees what the other one added
        probe = body(len(ids), "W-probe")
        probe_pids: set[int] = set()
        for _ in range(25):
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: score(server, probe), range(8)))
            probe_pids = {
                int(p.stem.split("-")[-2])
                for p in decisions.glob("decisions-*.jsonl")
                if '"W-probe"' in p.read_text()
            }
            if len(probe_pids) == 2:
                break
        assert probe_pids == pids
        for path in decisions.glob("decisions-*.jsonl"):
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if row["transaction_id"] == "W-probe":
                    assert row["features"]["customer_txn_count_1h"] == counts[0] + len(ids)
        assert len({lines[t][0] for t in ids} | probe_pids) == 2

        # a report: accepted once, duplicates after, wherever they land; the merchant's next
        # transaction counts the label (against one at the same time scored before the report)
        score(server, body(40, "W-control"))
        reported = (base + pd.Timedelta(seconds=30)).isoformat()
        report = {"transaction_id": "W-0", "reported_at": reported, "report_type": "chargeback"}
        with ThreadPoolExecutor(6) as pool:
            replies = list(
                pool.map(lambda _: server.request("POST", "/v1/fraud-reports", report), range(6))
            )
        statuses = sorted(r[1]["status"] for r in replies)
        assert statuses == ["accepted"] + ["duplicate_report"] * 5, replies
        score(server, body(40, "W-after"))
        lines = logged(decisions)
        control, after = lines["W-control"][1], lines["W-after"][1]
        assert after["merchant_fraud_count_1d"] == control["merchant_fraud_count_1d"] + 1
        assert after["merchant_txn_count_1d"] == control["merchant_txn_count_1d"]
        status, unknown = server.request(
            "POST", "/v1/fraud-reports", {**report, "transaction_id": "never-scored"}
        )
        assert status == 404, unknown
    # running_server sent SIGTERM and waited for the parent: nothing is left behind
    assert server.process.returncode == 0, server.output()
    _, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f"left behind: {alive}"


def test_a_dead_worker_stops_the_service(serving_build, redis_url, tmp_path) -> None:  # noqa: F811
    """A worker killed with SIGKILL: the parent stops the other one and exits 1 (a supervisor
    sees the service down, not silently half its size)."""
    env = serve_env(serving_build.env())
    settings = {
        "FRAUD_SERVE_STATE": redis_url,
        "FRAUD_SERVE_STATE_PREFIX": "serve-workers-death",
        "FRAUD_SERVE_WORKERS": "2",
    }
    with running_server(env, tmp_path, **settings) as server:
        pids = worker_pids(server, 2)
        assert len(pids) == 2, server.output()
        family = psutil.Process(server.process.pid).children(recursive=True)
        os.kill(min(pids), signal.SIGKILL)
        assert server.process.wait(timeout=60) == 1, server.output()
        _, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, f"left behind: {alive}"
        assert "exited -9: stopping all" in server.output()


def test_unreachable_redis_refuses_to_start(serving_build, tmp_path) -> None:  # noqa: F811
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = {**serve_env(serving_build.env()), "FRAUD_SERVE_STATE": url}
    env["FRAUD_SERVE_LOG_DIR"] = str(tmp_path)
    for workers in ("1", "2"):
        done = subprocess.run(
            [str(BIN / "fraud-serve"), "--workers", workers],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == 2, done.stderr
        assert f"FRAUD_SERVE_STATE={url}" in done.stderr and "onnect" in done.stderr, done.stderr


def test_settings_refuse_bad_state_and_workers_without_redis(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FRAUD_SERVE_STATE", "redis://127.0.0.1:99999/0")
    with pytest.raises(SettingError, match="FRAUD_SERVE_STATE"):
        ServeSettings.from_env()
    for bad in ("postgres://127.0.0.1/0", "redis://user:pw@127.0.0.1:6379/0", "Memory"):
        monkeypatch.setenv("FRAUD_SERVE_STATE", bad)
        with pytest.raises(SettingError, match="FRAUD_SERVE_STATE"):
            ServeSettings.from_env()
    monkeypatch.setenv("FRAUD_SERVE_STATE", "redis://127.0.0.1:6390/2")
    monkeypatch.setenv("FRAUD_SERVE_WORKERS", "3")
    settings = ServeSettings.from_env()
    assert settings.uses_redis and settings.workers == 3
    monkeypatch.setenv("FRAUD_SERVE_STATE_PREFIX", "no spaces")
    with pytest.raises(SettingError, match="FRAUD_SERVE_STATE_PREFIX"):
        ServeSettings.from_env()
    monkeypatch.delenv("FRAUD_SERVE_STATE_PREFIX")
    monkeypatch.setenv("FRAUD_SERVE_STATE", "memory")
    with pytest.raises(SettingError, match="FRAUD_SERVE_WORKERS=3"):
        ServeSettings.from_env()
    monkeypatch.delenv("FRAUD_SERVE_WORKERS")
    assert ServeSettings.from_env().workers == 1
    # the command line: exit 2 and the variable named, before anything is loaded
    done = subprocess.run(
        [str(BIN / "fraud-serve"), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FRAUD_SERVE_STATE": "memory"},
    )
    assert done.returncode == 2 and "FRAUD_SERVE_WORKERS=2" in done.stderr, done.stderr
