"""The registry lock that serialises promotions, and who decided."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from ml.promotion.outcome import LOCK_FILE, PromotionError


def local_lock_path(registry_uri: str) -> Path | None:
    """``promotion.lock`` beside a local registry (sqlite / file store); None when remote."""
    parsed = urlparse(registry_uri)
    if parsed.scheme == "sqlite":
        database = unquote(registry_uri.split(":///", 1)[1]) if ":///" in registry_uri else ""
        if not database or database == ":memory:":
            return None
        return Path(database).resolve().parent / LOCK_FILE
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path)).resolve() / LOCK_FILE
    return None


@contextlib.contextmanager
def registry_lock(path: Path | None, timeout: float) -> Iterator[Path | None]:
    """Exclusive fcntl lock on ``path`` (no-op for None), waiting up to ``timeout`` seconds."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() > deadline:
                    raise PromotionError(
                        f"another promotion holds {path}; gave up after {timeout:g} s"
                    ) from exc
                if not announced:
                    print(f"waiting for the promotion lock {path}", file=sys.stderr)
                    announced = True
                time.sleep(0.05)
        try:
            yield path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def default_actor() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"
