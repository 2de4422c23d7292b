"""``fraud-loadtest``: a bounded, open-loop load generator for ``fraud-serve`` on loopback.

Usage::

    fraud-loadtest --data tests/fixtures/small --rates 250,500,1000 --duration 5 [--batch 1]
                   [--connections 32] [--port 8765] [--server-pid PID]
    fraud-loadtest --in-process 5000      # features + score + reasons, no HTTP
    fraud-loadtest --compare-workers --redis-url redis://127.0.0.1:16379/0 [--redis-pid PID]
                   # memory x1, redis x1, redis x2 workers, servers started here (serve_compare)

Bodies are real transactions of ``--data`` (landing Parquet files) with fresh transaction ids
and timestamps just after the data's newest one (what arrives next). Each step offers
``rate`` requests/s for ``duration`` seconds on ``connections`` keep-alive connections: request
i is due at start + i / rate and its latency is measured from that due time (a server that
falls behind is charged for the queue: no coordinated omission). Printed per step: offered
and achieved transactions/s, p50/p99/p99.9 latency (ms), errors (non-200 or timeouts), and CPU
seconds per wall second of the server (``--server-pid`` and its worker processes), of
redis-server (``--redis-pid``) and of this generator. Only
127.0.0.1 is accepted; counts and durations are bounded (``MAX_*``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import orjson
import psutil

from ml.serving.online_features import epoch_micros
from ml.serving.requests import Limits, RequestError, parse_transaction

MAX_RATE = 50_000
MAX_DURATION_S = 60.0
MAX_CONNECTIONS = 512
TIMEOUT_S = 5.0


@dataclass
class StepResult:
    rate: int
    batch: int
    sent: int
    ok: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray
    server_cpu: float | None
    client_cpu: float
    redis_cpu: float | None = None

    def row(self) -> dict[str, float | int | str]:
        lat = self.latencies_ms if self.latencies_ms.size else np.array([np.nan])
        return {
            "offered_tps": self.rate * self.batch,
            "achieved_tps": round(self.ok * self.batch / self.seconds),
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "p999_ms": round(float(np.percentile(lat, 99.9)), 2),
            "errors": self.errors,
            "server_cpu": "-" if self.server_cpu is None else round(self.server_cpu, 2),
            "redis_cpu": "-" if self.redis_cpu is None else round(self.redis_cpu, 2),
            "client_cpu": round(self.client_cpu, 2),
        }


def load_bodies(data: Path, limit: int = 20_000) -> list[dict]:
    sql = f"""
        select transaction_id, customer_id, merchant_id, transaction_timestamp, amount,
            currency, transaction_type, merchant_category, device_id, ip_address
        from read_parquet('{data}/transactions/*.parquet')
        where amount > 0 and transaction_timestamp is not null
        order by transaction_timestamp desc limit {int(limit)}
    """
    with duckdb.connect() as con:
        rows = con.execute(sql).fetchall()
        columns = [d[0] for d in con.description]
    bodies = [dict(zip(columns, r, strict=True)) for r in rows]
    # the landing files hold deliberately bad rows: keep what the service accepts, dated at
    # the newest plausible timestamp (transactions arriving now, on the data's clock)
    now = time.time_ns() // 1000
    plausible = [b for b in bodies if epoch_micros(b["transaction_timestamp"]) <= now]
    if not plausible:
        return []
    newest = max(b["transaction_timestamp"] for b in plausible).isoformat()
    limits = Limits(max_past_seconds=10**9)
    kept = []
    for body in plausible:
        body["transaction_timestamp"] = newest
        try:
            parse_transaction(body, limits, now, 0)
        except RequestError:
            continue
        kept.append(body)
    return kept


def request_bytes(bodies: list[dict], start: int, batch: int, token: str | None) -> list[bytes]:
    """Ready-to-send HTTP requests with fresh transaction ids."""
    out = []
    header_token = f"authorization: Bearer {token}\r\n" if token else ""
    for i in range(start, start + len(bodies) // batch):
        items = []
        for j in range(batch):
            row = dict(bodies[(i * batch + j) % len(bodies)])
            row["transaction_id"] = f"LT-{os.getpid()}-{i}-{j}"
            items.append(row)
        body = orjson.dumps(items if batch > 1 else items[0])
        head = (
            f"POST /v1/score HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"{header_token}content-length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def run_step(
    port: int, rate: int, duration: float, connections: int, requests: list[bytes]
) -> tuple[int, int, int, float, np.ndarray]:
    total = min(int(rate * duration), len(requests))
    latencies: list[float] = []
    counters = {"ok": 0, "errors": 0, "next": 0}
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                i = counters["next"]
                if i >= total:
                    return
                counters["next"] = i + 1
                due = start + i / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    writer.write(requests[i])
                    status = await asyncio.wait_for(read_response(reader), TIMEOUT_S)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    counters["errors"] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append((loop.time() - due) * 1000)
                counters["ok" if status == 200 else "errors"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    seconds = max(loop.time() - start, 1e-9)
    return total, counters["ok"], counters["errors"], seconds, np.asarray(latencies)


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            total += sum(process.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


def measure(args: argparse.Namespace, rate: int, requests: list[bytes]) -> StepResult:
    server = psutil.Process(args.server_pid) if args.server_pid else None
    # the server: fraud-serve and its workers (fraud-serve --workers N)
    servers = [server, *server.children(recursive=True)] if server else []
    redis = [psutil.Process(args.redis_pid)] if args.redis_pid else []
    me = [psutil.Process()]
    s0, r0, c0 = cpu_seconds(servers), cpu_seconds(redis), cpu_seconds(me)
    sent, ok, errors, seconds, lat = asyncio.run(
        run_step(args.port, rate, args.duration, args.connections, requests)
    )
    s1, r1, c1 = cpu_seconds(servers), cpu_seconds(redis), cpu_seconds(me)
    return StepResult(
        rate,
        args.batch,
        sent,
        ok,
        errors,
        seconds,
        lat,
        (s1 - s0) / seconds if server else None,
        (c1 - c0) / seconds,
        (r1 - r0) / seconds if redis else None,
    )


def in_process(bodies: list[dict], n: int) -> dict[str, float]:
    """Features + score + reasons for one transaction at a time, in this process, on the state
    and champion fraud-serve would load (its settings from the environment)."""
    from ml.serving.cli import build_service
    from ml.serving.config import ServeSettings
    from ml.serving.online_features import cold_start_notes, compute_features

    service = build_service(ServeSettings.from_env())
    model, state = service.champion, service.state
    assert model is not None
    now = time.time_ns() // 1000
    limits = Limits(max_past_seconds=10**9)
    txns = [
        parse_transaction({**b, "transaction_id": f"IP-{i}"}, limits, now, 0)
        for i, b in enumerate(bodies[: min(len(bodies), n)])
    ]
    timings = []
    for i in range(n):
        txn = txns[i % len(txns)]
        started = time.perf_counter()
        history = state.history(txn)
        model.decide(compute_features(txn, history), cold_start_notes(history))
        timings.append((time.perf_counter() - started) * 1000)
    lat = np.asarray(timings[min(200, n // 10) :])
    return {
        "n": int(lat.size),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "p999_ms": round(float(np.percentile(lat, 99.9)), 3),
    }


def markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fraud-loadtest", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("tests/fixtures/small"))
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rates", default="250,500,1000", help="requests/s per step")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per step")
    parser.add_argument("--batch", type=int, default=1, help="transactions per request")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server-pid", type=int, help="fraud-serve's pid (CPU column)")
    parser.add_argument("--token-env", default="FRAUD_SERVE_TOKEN")
    parser.add_argument(
        "--in-process", type=int, metavar="N", help="instead: time N in-process decisions"
    )
    parser.add_argument(
        "--compare-workers",
        action="store_true",
        help="start fraud-serve memory x1, redis x1, redis x2 here and compare (--redis-url)",
    )
    parser.add_argument("--redis-url", help="the redis-server of --compare-workers")
    parser.add_argument("--redis-pid", type=int, help="redis-server's pid (CPU column)")
    args = parser.parse_args(argv)
    if args.compare_workers and not (args.redis_url or "").startswith("redis://127.0.0.1:"):
        parser.error("--compare-workers needs --redis-url redis://127.0.0.1:PORT/DB (loopback)")
    if args.host != "127.0.0.1":
        parser.error("--host: loopback only (127.0.0.1)")
    args.rate_list = [int(r) for r in args.rates.split(",") if r.strip()]
    if not args.rate_list or any(r < 1 or r > MAX_RATE for r in args.rate_list):
        parser.error(f"--rates: integers in 1..{MAX_RATE}")
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration: 0 < seconds <= {MAX_DURATION_S}")
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        parser.error(f"--connections: 1..{MAX_CONNECTIONS}")
    if not 1 <= args.batch <= 1000:
        parser.error("--batch: 1..1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bodies = load_bodies(args.data)
    if not bodies:
        print(f"fraud-loadtest: no transactions under {args.data}", file=sys.stderr)
        return 2
    if args.in_process:
        print(markdown([in_process(bodies, min(args.in_process, 1_000_000))]))
        return 0
    token = os.environ.get(args.token_env)
    offset = 0

    def run_steps(args: argparse.Namespace) -> list[dict]:
        nonlocal offset  # fresh transaction ids across steps and servers
        rows = []
        for rate in args.rate_list:
            needed = int(rate * args.duration)
            requests: list[bytes] = []
            while len(requests) < needed:
                requests += request_bytes(bodies, offset, args.batch, token)
                offset += len(bodies) // args.batch
            started = time.perf_counter()
            result = measure(args, rate, requests[:needed])
            rows.append(result.row())
            print(f"step {rate}/s done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        return rows

    if args.compare_workers:
        from bench.serve_compare import compare, ratio_lines

        rows = compare(args, run_steps)
        print(markdown(rows))
        print("\n".join(ratio_lines(rows)))
        return 0
    print(markdown(run_steps(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
