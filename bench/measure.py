"""Measuring processes (wall time, peak RSS of the process tree), machine description and
dbt's run_results.json per layer."""

import contextlib
import json
import math
import os
import platform
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.config import GIB, POLL_SECONDS, PROJECT_ROOT

# --------------------------------------------------------------------------------------------
# Measuring processes
# --------------------------------------------------------------------------------------------


class TreeMemoryMonitor(threading.Thread):
    """Polls the resident memory of a process and all its descendants (summed) every
    ``interval`` seconds and keeps the peak."""

    def __init__(self, pid: int, interval: float = POLL_SECONDS) -> None:
        super().__init__(daemon=True, name=f"rss-monitor-{pid}")
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self.samples = 0
        self._halt = threading.Event()

    def sample(self) -> int:
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += int(process.memory_info().rss)
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            rss = self.sample()
            self.samples += 1
            self.peak_rss = max(self.peak_rss, rss)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


@dataclass
class Run:
    """One measured subprocess."""

    name: str
    command: list[str]
    seconds: float
    peak_rss: int
    returncode: int
    log: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_measured(
    name: str, command: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path = PROJECT_ROOT
) -> Run:
    """Run ``command`` with its output in ``log``; wall time and peak tree RSS."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        started = time.perf_counter()
        process = psutil.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
        monitor = TreeMemoryMonitor(process.pid)
        monitor.start()
        try:
            returncode = process.wait()
        finally:
            monitor.stop()
        seconds = time.perf_counter() - started
    return Run(name, list(command), seconds, monitor.peak_rss, int(returncode), str(log))


def log_tail(path: str | Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / GIB, 1),
        "cpu_model": _cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "duckdb": _version("duckdb"),
        "dbt-core": _version("dbt-core"),
        "dbt-duckdb": _version("dbt-duckdb"),
        "scikit-learn": _version("scikit-learn"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "mlflow": _version("mlflow"),
        "load_average_at_start": [round(x, 2) for x in load],
    }


# --------------------------------------------------------------------------------------------
# dbt run_results helpers
# --------------------------------------------------------------------------------------------

LAYER_OF_PATH = (
    ("bronze", "bronze"),
    ("silver", "silver"),
    ("governed", "silver"),
    ("gold", "gold"),
    ("ml", "training"),
    ("audit", "audit"),
)


def layer_of(unique_id: str, original_path: str) -> str:
    if unique_id.startswith(("test.", "unit_test.")):
        return "tests"
    if unique_id.startswith("operation."):
        return "hooks"
    if unique_id.endswith(".fraud_scores"):
        return "scoring"
    parts = Path(original_path).parts
    folder = parts[1] if len(parts) > 1 and parts[0] == "models" else ""
    return next((layer for prefix, layer in LAYER_OF_PATH if folder == prefix), "other")


def read_run_results(target: Path) -> dict[str, Any]:
    """elapsed (dbt's own run time, parse excluded), node count, seconds per layer (sum of node
    execution times; threads overlap), the slowest nodes."""
    path = target / "run_results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    manifest_paths: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
        for uid, node in manifest.get("nodes", {}).items():
            manifest_paths[uid] = str(node.get("original_file_path", ""))
    layers: dict[str, float] = {}
    nodes: list[tuple[float, str]] = []
    failures = []
    for result in data.get("results", []):
        uid = str(result.get("unique_id"))
        seconds = float(result.get("execution_time") or 0.0)
        layer = layer_of(uid, manifest_paths.get(uid, ""))
        layers[layer] = layers.get(layer, 0.0) + seconds
        nodes.append((seconds, uid))
        if result.get("status") not in ("success", "pass", "skipped", "warn"):
            failures.append(uid)
    nodes.sort(reverse=True)
    return {
        "elapsed_seconds": float(data.get("elapsed_time") or 0.0),
        "nodes": len(nodes),
        "layer_seconds": {k: round(v, 2) for k, v in sorted(layers.items())},
        "slowest": [{"node": uid, "seconds": round(s, 2)} for s, uid in nodes[:8]],
        "failures": failures,
        # every model's own execution time, by model name (the transaction-level ratios)
        "model_seconds": {
            uid.rsplit(".", 1)[-1]: round(s, 3) for s, uid in nodes if uid.startswith("model.")
        },
    }
