"""``fraud-serve --workers N``: N stateless worker processes behind one listening socket, their
feature state shared in Redis (``ml.serving.redis_state``).

The parent checks the settings and @champion, bootstraps the Redis state from the warehouse
once (skipped when the prefix is already bootstrapped: the workers keep it current), binds the
socket, and starts N ``spawn``ed workers. Each worker builds its own service without
bootstrapping (its own model copies, Redis connection and decision-log files: the file names
carry the pid) and serves the inherited socket with uvicorn; the kernel hands each new
connection to one of them. The parent stops every worker on SIGTERM/SIGINT (uvicorn's graceful
shutdown: in-flight requests finish, the log is flushed) and when any worker dies (exit 1), so
a supervisor sees one service that is up or down, never a silently shrunk one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from dataclasses import replace
from typing import Any

from ml.serving.config import ServeSettings

logger = logging.getLogger("fraud-serve")
STOP_TIMEOUT_S = 20.0
BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def run_worker(settings: ServeSettings, sock: socket.socket) -> None:
    """One worker process: its service (no bootstrap) on the shared socket."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    import uvicorn

    from ml.serving.cli import UVICORN_OPTIONS, build_service, serving_app

    app = serving_app(build_service(settings), settings, f"worker {os.getpid()} ready")
    uvicorn.Server(uvicorn.Config(app, **UVICORN_OPTIONS)).run(sockets=[sock])


def serve_workers(settings: ServeSettings) -> int:
    """The parent (module docstring); returns the exit code."""
    from ml.serving.cli import bootstrap_state, check_champion, make_state
    from ml.serving.redis_state import RedisState
    from ml.warehouse import connect

    check_champion(settings)
    state = make_state(settings)
    assert isinstance(state, RedisState), "several workers need the Redis state"
    with connect(settings.target, read_only=True) as warehouse:
        bootstrap_state(state, warehouse, settings)
    state.close()
    sock = bind(settings.host, settings.port)
    context = multiprocessing.get_context("spawn")
    worker_settings = replace(settings, bootstrap=False)
    workers = [
        context.Process(
            target=run_worker, args=(worker_settings, sock), name=f"fraud-serve-worker-{i}"
        )
        for i in range(settings.workers)
    ]
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        for worker in workers:
            worker.start()
        print(
            f"fraud-serve: {settings.workers} workers (pids "
            f"{', '.join(str(w.pid) for w in workers)}) on http://{settings.host}:{settings.port} "
            f"state={settings.state_url} prefix={settings.state_prefix} log={settings.log_dir}",
            flush=True,
        )
        while not stopping.wait(0.25):
            dead = [w for w in workers if not w.is_alive()]
            if dead:
                for worker in dead:
                    logger.error("worker %s exited %s: stopping all", worker.pid, worker.exitcode)
                code = 1
                break
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: uvicorn's graceful shutdown
        for worker in (w for w in workers if w.pid is not None):
            worker.join(STOP_TIMEOUT_S)
            if worker.is_alive():
                logger.error("worker %s did not stop in %.0f s: killed", worker.pid, STOP_TIMEOUT_S)
                worker.kill()
                worker.join()
        sock.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code
