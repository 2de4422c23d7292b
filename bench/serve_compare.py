"""``fraud-loadtest --compare-workers --redis-url redis://127.0.0.1:PORT/0``: the same load
steps against ``fraud-serve`` with in-process state and one worker, Redis state and one worker,
and Redis state and two workers (``FRAUD_SERVE_WORKERS``), each started here on ``--port`` and
stopped afterwards; prints one table and the two-worker / one-worker throughput ratio.

The servers use the warehouse and registry of the environment (as ``make serve``), their own
Redis key prefix (bootstrapped by the first Redis run, deleted at the end) and
``bench/out/decisions`` for the decision log. CPU columns: the server is the parent and all its
workers; ``--redis-pid`` adds redis-server's. The generator runs on the same machine: on few
cores it competes with the workers for CPU (its own column says how much it took), as does
anything else running (``load_1m``: the load average after each step; ``os.cpu_count()`` is
printed with the ratio).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

CONFIGS: tuple[tuple[str, int], ...] = (("memory", 1), ("redis", 1), ("redis", 2))
START_TIMEOUT_S = 300.0
OUT = Path("bench/out")


def ready_pid(port: int) -> int | None:
    """The pid of the worker answering /readyz, or None when not ready."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        body = response.read()
        return int(json.loads(body)["pid"]) if response.status == 200 else None
    except (OSError, ValueError, KeyError):
        return None
    finally:
        connection.close()


@contextlib.contextmanager
def started_server(env: dict[str, str], port: int, workers: int, log: Path) -> Iterator[int]:
    """``fraud-serve`` started with ``env``; yields its pid once ``workers`` workers answer."""
    binary = Path(sys.executable).parent / "fraud-serve"
    with log.open("w") as out:
        process = subprocess.Popen([str(binary)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, seen = time.monotonic() + START_TIMEOUT_S, set()
        while len(seen) < workers:
            if process.poll() is not None:
                raise RuntimeError(f"fraud-serve exited {process.returncode}: see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"fraud-serve not ready in {START_TIMEOUT_S:.0f} s: see {log}")
            pid = ready_pid(port)
            if pid is None:
                time.sleep(0.5)
            else:
                seen.add(pid)
        yield process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def compare(
    args: argparse.Namespace, run_steps: Callable[[argparse.Namespace], list[dict]]
) -> list[dict]:
    """Every configuration of ``CONFIGS`` through ``run_steps`` (the load steps of ``args``)."""
    from ml.serving.redis_state import RedisState

    prefix = f"loadtest-{os.getpid()}"
    OUT.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    try:
        for state, workers in CONFIGS:
            env = {
                **os.environ,
                "FRAUD_SERVE_PORT": str(args.port),
                "FRAUD_SERVE_LOG_DIR": str(OUT / "decisions"),
                "FRAUD_SERVE_STATE": args.redis_url if state == "redis" else "memory",
                "FRAUD_SERVE_STATE_PREFIX": prefix,
                "FRAUD_SERVE_WORKERS": str(workers),
            }
            log = OUT / f"serve-{state}-{workers}.log"
            started = time.perf_counter()
            with started_server(env, args.port, workers, log) as pid:
                print(
                    f"{state} x{workers}: ready in {time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                )
                args.server_pid = pid
                for row in run_steps(args):
                    # the machine's 1-minute load average after the step: others' load shows
                    load = round(os.getloadavg()[0], 1)
                    rows.append({"state": state, "workers": workers, **row, "load_1m": load})
    finally:
        store = RedisState(args.redis_url, prefix)
        store.clear()
        store.close()
    return rows


def ratio_lines(rows: list[dict]) -> list[str]:
    """Redis x2 over Redis x1 achieved transactions/s, per offered rate and at the best step."""

    def achieved(workers: int) -> dict[int, int]:
        return {
            int(r["offered_tps"]): int(r["achieved_tps"])
            for r in rows
            if r["state"] == "redis" and r["workers"] == workers
        }

    one, two = achieved(1), achieved(2)
    lines = [
        f"offered {rate}/s: redis x2 / redis x1 = {two[rate] / one[rate]:.2f}"
        for rate in sorted(one)
        if rate in two and one[rate] > 0
    ]
    if one and two and max(one.values()) > 0:
        best = max(two.values()) / max(one.values())
        lines.append(f"best step: redis x2 / redis x1 = {best:.2f} ({os.cpu_count()} CPUs)")
    return lines
