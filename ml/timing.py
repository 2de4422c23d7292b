"""Phase timings as log events: code marks a phase with ``@phase`` (or ``with timed(name)``)
and emits one DEBUG record on logger ``ml.timing`` carrying ``phase`` and ``seconds``. Nothing
is measured unless a listener enables that logger (the benchmark, bench/)."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

logger = logging.getLogger("ml.timing")

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def timed(name: str) -> Iterator[None]:
    """Emit the duration of the block as phase ``name`` (when ``ml.timing`` listens)."""
    if not logger.isEnabledFor(logging.DEBUG):
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        logger.debug("phase %s: %.6f s", name, seconds, extra={"phase": name, "seconds": seconds})


def phase(function: F) -> F:
    """Decorator: every call of ``function`` is a phase named after it."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with timed(function.__name__):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
