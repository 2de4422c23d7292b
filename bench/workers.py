"""The worker registry: ``python -m bench _worker NAME SPEC.json`` runs one in its own process
so its memory is measured on its own."""

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.workers_data import worker_limit, worker_notebook, worker_same_work_model
from bench.workers_scoring import worker_scoring
from bench.workers_training import worker_training
from bench.workers_transactions import worker_tx_limit, worker_tx_scoring

WORKERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "limit": worker_limit,
    "notebook": worker_notebook,
    "same-work-model": worker_same_work_model,
    "training": worker_training,
    "scoring": worker_scoring,
    "tx_limit": worker_tx_limit,
    "tx_scoring": worker_tx_scoring,
}


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def worker_main(argv: Sequence[str]) -> int:
    """``python -m bench _worker NAME SPEC.json``: run a worker, write its result JSON."""
    if len(argv) != 2 or argv[0] not in WORKERS:
        print(f"usage: _worker {{{','.join(WORKERS)}}} SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result = WORKERS[argv[0]](spec)
    Path(spec["result"]).write_text(
        json.dumps(result, indent=2, default=_json_default), encoding="utf-8"
    )
    return 0
