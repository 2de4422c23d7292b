"""`make mlflow-ui` leaves no server or worker process behind when it is stopped, by Ctrl-C
(SIGINT to make's foreground process group) or by `kill <make pid>` (SIGTERM). A real make, a
real `mlflow ui` on a free port of 127.0.0.1 and a copy of the empty registry template."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("stop", ["ctrl-c", "kill"])
def test_stopping_make_mlflow_ui_ends_every_process(
    stop: str, tmp_path: Path, mlflow_template: Path
) -> None:
    if shutil.which("make") is None or shutil.which("setsid") is None:
        pytest.skip("needs make and setsid")
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    port = _free_port()
    env = {**os.environ, "FRAUD_MLFLOW_DIR": str(tmp_path)}
    make = subprocess.Popen(
        ["make", "--no-print-directory", "mlflow-ui", f"MLFLOW_UI_PORT={port}"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # make leads its own group: the "terminal" of this test
    )
    started: set[int] = set()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(port):
            assert make.poll() is None, f"make mlflow-ui exited {make.returncode}"
            assert time.monotonic() < deadline, "mlflow ui did not start listening"
            time.sleep(0.5)
        time.sleep(1)  # workers are up once the port answers; let the tree settle
        started = _descendants(make.pid)
        assert len(started) >= 3, "expected make's shell, mlflow and its server"
        if stop == "ctrl-c":
            os.killpg(make.pid, signal.SIGINT)
        else:
            os.kill(make.pid, signal.SIGTERM)
        make.wait(timeout=STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (left := {pid for pid in started if _alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"processes left after {stop}: {sorted(left)}"
        assert not _listening(port)
    finally:
        for pid in [make.pid, *started]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        make.wait(timeout=STOP_TIMEOUT_S)
