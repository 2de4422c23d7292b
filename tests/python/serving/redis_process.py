"""A real ``redis-server`` for the serving tests: on 127.0.0.1, a free port, no persistence, in
a temp folder, stopped afterwards (also on failure). Installed from Debian's redis-server when
missing and we are root with apt-get (CI's fresh machine), as engines.ensure_java does for
Java; with CI=true a Redis that cannot be had fails the test instead of skipping it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from serve_process import free_port
from system_packages import ensure_debian_package

IN_CI = os.environ.get("CI", "").lower() == "true"
START_TIMEOUT_S = 20


def ensure_redis_server() -> str | None:
    """``redis-server`` on PATH (installed when missing and possible); why not, or None."""
    return ensure_debian_package("redis-server", "redis-server")


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"redis-server unavailable in CI (mandatory there): {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def running_redis(folder: Path) -> Iterator[str]:
    """A redis-server of its own; yields its URL (redis://127.0.0.1:PORT/0)."""
    reason = ensure_redis_server()
    if reason is not None:
        unavailable(reason)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        str(shutil.which("redis-server")),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(folder),
        "--save", "",
        "--appendonly", "no",
        "--protected-mode", "yes",
        "--daemonize", "no",
    ]  # fmt: skip
    log = folder / f"redis-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                code = process.returncode
                raise AssertionError(f"redis-server exited {code}:\n{log.read_text()}")
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server not answering:\n{log.read_text()}")
            time.sleep(0.05)
        client.close()
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url
