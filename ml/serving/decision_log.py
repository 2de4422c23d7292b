"""The decision log: every decision the service answers is appended, as one JSON line, to a
rotated file under the log folder before the answer is sent.

Flush policy (group commit): a request's lines go to a shared buffer; one writer task writes
the buffer to the open file and ``fsync``s it (``sync="fsync"``, the default) or only hands it
to the kernel (``sync="write"``: survives a killed process, not a crashed machine), then wakes
every request of that group. A reply therefore leaves only after its decision is on disk: a
``kill -9`` loses at most the requests not yet answered (their last line may be torn; the
loader skips a line that is not valid JSON). Files rotate at ``max_bytes`` or ``max_seconds``:
``decisions-<UTC start>-<pid>-<n>.jsonl``, closed files are never written again. Shadow
(challenger) lines ride the next group without being waited for.

The dbt source ``decision_log.decisions`` (models/bronze/raw/_raw__decision_log_sources.yml)
reads these files; audit.online_predictions appends the new lines incrementally and
audit.model_predictions the decisions it has not logged yet (entity_type
``online_transaction``), each line's ``decision_us`` (time to decide) with them.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

SYNC_MODES = ("fsync", "write")


class DecisionLog:
    def __init__(
        self,
        folder: Path,
        *,
        sync: str = "fsync",
        max_bytes: int = 64 * 1024 * 1024,
        max_seconds: float = 3600.0,
    ) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"decision_log_sync must be one of {SYNC_MODES}, got {sync!r}")
        self.folder = folder
        self.sync = sync
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._fd: int | None = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._size = 0
        self._sequence = 0
        self.lines_written = 0
        self.groups_written = 0

    @property
    def path(self) -> Path | None:
        return self._path

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._writer())

    async def append(self, lines: list[bytes], wait: bool = True) -> None:
        """Queue ``lines`` (each one JSON document, no newline); with ``wait`` return once
        they are written under the flush policy."""
        assert self._wake is not None, "DecisionLog.start() first"
        self._pending.extend(lines)
        if not wait:
            self._wake.set()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._wake.set()
        await future

    async def _writer(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                continue
            lines, self._pending = self._pending, []
            waiters, self._waiters = self._waiters, []
            try:
                await asyncio.to_thread(self._write, b"".join(line + b"\n" for line in lines))
                self.lines_written += len(lines)
                self.groups_written += 1
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            except Exception as exc:  # a full disk fails the requests, never silently
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)

    def _write(self, data: bytes) -> None:
        now = time.time()
        if (
            self._fd is None
            or self._size + len(data) > self.max_bytes
            or now - self._opened_at > self.max_seconds
        ):
            self._rotate(now)
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self.sync == "fsync":
            os.fsync(self._fd)
        self._size += len(data)

    def _rotate(self, now: float) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        self._path = self.folder / f"decisions-{stamp}-{os.getpid()}-{self._sequence:04d}.jsonl"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        directory = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(directory)  # the new file's name survives a crash too
        finally:
            os.close(directory)
        self._opened_at = now
        self._size = 0

    async def close(self) -> None:
        if self._task is not None:
            if self._pending and self._wake is not None:
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                self._wake.set()
                await waiter
            self._task.cancel()
            self._task = None
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
