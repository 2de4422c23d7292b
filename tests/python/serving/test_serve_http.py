"""``fraud-serve`` as a real process on loopback, on the fixture build's warehouse and registry
(@champion set there): a fixture transaction gets a score and three reasons from the champion,
/healthz /readyz /metrics work, every bad body is a 4xx naming its field (never a 500, the
worker keeps answering), a slow client does not stall others, the bearer token is enforced,
and a production target without @champion refuses to start."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import time

import pytest
from serve_process import BIN, landing_body, running_server, serve_env
from serving_fixtures import serving_build  # noqa: F401

from ml.transaction_model import MODEL_NAME

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def fixture_rows(serving_build):  # noqa: F811
    return serving_build.query(
        "select * from silver.transactions_cleaned order by transaction_at desc limit 20"
    ).to_dict("records")


@pytest.fixture(scope="module")
def server(serving_build, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("serve_http")
    env = serve_env(serving_build.env())
    with running_server(env, folder, FRAUD_SERVE_TOKEN=TOKEN) as running:
        yield running


AUTH = {"authorization": f"Bearer {TOKEN}"}


def test_scores_a_fixture_transaction_with_three_reasons(server, fixture_rows) -> None:
    status, body = server.request("POST", "/v1/score", landing_body(fixture_rows[0]), headers=AUTH)
    assert status == 200, body
    assert body["transaction_id"] == fixture_rows[0]["transaction_id"]
    assert 0.0 <= body["fraud_probability"] <= 1.0
    assert isinstance(body["is_flagged"], bool)
    assert body["risk_band"] in {"low", "medium", "high", "critical"}
    assert len(body["reasons"]) == 3 and all(isinstance(r, str) and r for r in body["reasons"])
    assert body["model_name"] == MODEL_NAME and body["model_version"] >= 1
    batch = [landing_body(r) for r in fixture_rows[1:6]]
    status, replies = server.request("POST", "/v1/score", batch, headers=AUTH)
    assert status == 200 and [r["transaction_id"] for r in replies] == [
        b["transaction_id"] for b in batch
    ]


def test_health_ready_metrics(server) -> None:
    assert server.request("GET", "/healthz") == (200, {"status": "alive"})
    status, ready = server.request("GET", "/readyz")
    assert status == 200 and ready["ready"] and ready["state"]["transactions"] >= 8000
    status, text = server.request("GET", "/metrics")
    assert status == 200
    assert 'fraud_serve_requests_total{endpoint="score",status="200"}' in text
    assert "fraud_serve_request_seconds_bucket" in text and "fraud_serve_ready 1" in text
    assert f'model_name="{MODEL_NAME}"' in text


def bad_cases(row):
    good = landing_body(row, transaction_id="BAD-1")
    without = {k: v for k, v in good.items() if k != "amount"}
    return [
        ("malformed", None, b'{"transaction_id": "x",', 400, "body"),
        ("not an object", 17, None, 400, "body"),
        ("missing field", without, None, 422, "amount"),
        ("extra field", {**good, "is_fraud": True}, None, 422, "is_fraud"),
        ("wrong type", {**good, "amount": "12.5"}, None, 422, "amount"),
        ("id wrong type", {**good, "customer_id": 42}, None, 422, "customer_id"),
        ("negative", {**good, "amount": -5.0}, None, 422, "amount"),
        ("zero", {**good, "amount": 0}, None, 422, "amount"),
        ("NaN", None, json.dumps({**good, "amount": math.nan}).encode(), 422, "amount"),
        ("Infinity", None, json.dumps({**good, "amount": math.inf}).encode(), 422, "amount"),
        ("huge", {**good, "amount": 1e300}, None, 422, "amount"),
        ("far future", {**good, "transaction_timestamp": "2099-01-01T00:00:00"}, None, 422,
         "transaction_timestamp"),
        ("far past", {**good, "transaction_timestamp": "2001-01-01T00:00:00"}, None, 422,
         "transaction_timestamp"),
        ("bad timestamp", {**good, "transaction_timestamp": "yesterday"}, None, 422,
         "transaction_timestamp"),
        ("unknown currency", {**good, "currency": "XXX"}, None, 422, "currency"),
        ("unknown type", {**good, "transaction_type": "barter"}, None, 422, "transaction_type"),
        ("empty batch", [], None, 400, "body"),
        ("bad item in batch", [good, {**good, "amount": None}], None, 422, "amount"),
    ]  # fmt: skip


def test_bad_bodies_get_a_4xx_naming_the_field(server, fixture_rows) -> None:
    for name, body, raw, status, field in bad_cases(fixture_rows[0]):
        got, reply = server.request("POST", "/v1/score", body, raw=raw, headers=AUTH)
        assert got == status, (name, got, reply)
        assert reply["field"] == field, (name, reply)
    got, reply = server.request("POST", "/v1/score", raw=b"x" * (2 * 1024 * 1024), headers=AUTH)
    assert got == 413 and reply["field"] == "body"
    got, reply = server.request(
        "POST", "/v1/score", raw=b"a=1", headers={**AUTH, "content-type": "text/plain"}
    )
    assert got == 415
    report = {"transaction_id": "NOPE", "reported_at": "2026-10-01T00:00:00", "report_type": "x"}
    got, reply = server.request("POST", "/v1/fraud-reports", report, headers=AUTH)
    assert got == 422 and reply["field"] == "report_type"
    got, reply = server.request(
        "POST", "/v1/fraud-reports", {**report, "report_type": "chargeback"}, headers=AUTH
    )
    assert got == 404 and reply["field"] == "transaction_id"
    # the worker is alive and scoring after all of it; nothing was a 500
    got, _ = server.request("POST", "/v1/score", landing_body(fixture_rows[2]), headers=AUTH)
    assert got == 200
    _, text = server.request("GET", "/metrics")
    assert 'status="500"' not in text


def test_unknown_customer_and_merchant_use_cold_start_defaults(server, fixture_rows) -> None:
    body = landing_body(
        fixture_rows[0], transaction_id="COLD-1", customer_id="C-NEW", merchant_id="M-NEW"
    )
    status, reply = server.request("POST", "/v1/score", body, headers=AUTH)
    assert status == 200
    assert any("unknown customer" in r for r in reply["reasons"])
    assert any("unknown merchant" in r for r in reply["reasons"])


def test_fraud_report_is_accepted_then_duplicate(server, fixture_rows) -> None:
    tid = fixture_rows[3]["transaction_id"]
    report = {
        "transaction_id": tid,
        "reported_at": "2026-10-31T12:00:00",
        "report_type": "chargeback",
    }
    first = server.request("POST", "/v1/fraud-reports", report, headers=AUTH)
    again = server.request("POST", "/v1/fraud-reports", report, headers=AUTH)
    assert first[0] == 200 and first[1]["status"] in {"accepted", "duplicate_report"}
    assert again == (200, {"transaction_id": tid, "status": "duplicate_report"})


def test_token_required(server, fixture_rows) -> None:
    status, reply = server.request("POST", "/v1/score", landing_body(fixture_rows[0]))
    assert status == 401 and reply["field"] == "authorization"
    wrong = {"authorization": "Bearer nope"}
    assert (
        server.request("POST", "/v1/score", landing_body(fixture_rows[0]), headers=wrong)[0] == 401
    )


def test_slow_client_does_not_stall_others(server, fixture_rows) -> None:
    slow = socket.create_connection(("127.0.0.1", server.port))
    try:
        slow.sendall(b"POST /v1/score HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\n{")
        started = time.perf_counter()
        status, _ = server.request("POST", "/v1/score", landing_body(fixture_rows[4]), headers=AUTH)
        assert status == 200 and time.perf_counter() - started < 2.0
    finally:
        slow.close()


def test_refuses_to_start_on_a_production_target_without_champion(
    tmp_path,
    fresh_mlflow_dir,
    serving_build,  # noqa: F811
) -> None:
    env = serve_env(serving_build.env())
    env.update(FRAUD_MLFLOW_DIR=str(fresh_mlflow_dir), DBT_TARGET="databricks")
    result = subprocess.run(
        [str(BIN / "fraud-serve")], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to start" in result.stderr and "production target" in result.stderr
