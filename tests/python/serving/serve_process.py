"""Start ``fraud-serve`` as a real process on a free loopback port and stop it (also on
failure); a tiny JSON client over http.client. Used by the serving tests."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = raw if raw is not None else None if body is None else json.dumps(body).encode()
            sent = {"content-type": "application/json", **(headers or {})}
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            text = response.read().decode()
            ctype = response.getheader("content-type", "")
            return response.status, json.loads(text) if "json" in ctype else text
        finally:
            connection.close()

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@contextlib.contextmanager
def running_server(env: Mapping[str, str], folder: Path, **settings: str) -> Iterator[Server]:
    """``fraud-serve`` with ``env`` plus FRAUD_SERVE_* ``settings``; waits for /readyz."""
    port = free_port()
    full = {**env, "FRAUD_SERVE_PORT": str(port), **settings}
    full.setdefault("FRAUD_SERVE_LOG_DIR", str(folder / "decisions"))
    log = folder / f"serve-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "fraud-serve")], env=full, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(process, port, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"fraud-serve exited {process.returncode}:\n{server.output()}")
            with contextlib.suppress(OSError):
                status, _ = server.request("GET", "/readyz", timeout=2)
                if status == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"fraud-serve not ready:\n{server.output()}")
            time.sleep(0.3)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def landing_body(row: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A /v1/score body from a silver.transactions_cleaned row."""
    body = {
        "transaction_id": row["transaction_id"],
        "customer_id": row["customer_id"],
        "merchant_id": row["merchant_id"],
        "transaction_timestamp": pd.Timestamp(row["transaction_at"]).isoformat(),
        "amount": float(row["amount"]),
        "currency": row["currency"],
        "transaction_type": row["transaction_type"],
        "merchant_category": row["merchant_category"],
        "device_id": row["device_id"],
        "ip_address": row["ip_address"],
    }
    body.update(changes)
    return body


def serve_env(project_env: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(project_env)
    env["DBT_TARGET"] = "test"
    return env
