"""Debian packages a test needs (Java for Spark, redis-server), installed on CI's fresh machine."""

from __future__ import annotations

import os
import shutil
import subprocess


def ensure_debian_package(binary: str, package: str) -> str | None:
    """``binary`` on PATH, installed from Debian's ``package`` when missing and we are root with
    apt-get (CI's fresh machine). Returns why it is unavailable, or None."""
    if shutil.which(binary):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{binary} is missing and cannot be installed (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", package],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {(done.stdout + done.stderr)[-2000:]}"
    return None if shutil.which(binary) else f"{package} installed but no {binary} on PATH"
