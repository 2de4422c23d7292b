"""Writing a batch: Parquet files written atomically, the manifest, and reading it back."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from simulator import label_feed
from simulator.batch import GeneratedData, TransactionColumns
from simulator.config import (
    CHUNK_ROWS,
    DEFECTS,
    GENERATOR_ID,
    GENERATOR_VERSION,
    SCENARIOS,
    TRANSACTIONS_SCHEMA,
    ConfigError,
)

# --------------------------------------------------------------------------- output


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic(path: Path, writer: Callable[[Path], object]) -> None:
    """Write via ``writer`` into a temp file next to ``path``, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        writer(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


_PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd"}
# transaction_id is unique per row: dictionary encoding would only cost time
_TX_DICTIONARY_COLUMNS = [
    "customer_id", "merchant_id", "currency", "transaction_type", "merchant_category",
    "device_id", "ip_address",
]  # fmt: skip
_TX_STATISTICS_COLUMNS = [
    "transaction_id", "customer_id", "merchant_id", "transaction_timestamp", "amount",
    "currency", "transaction_type", "merchant_category", "is_fraud",
]  # fmt: skip


def _write_table(table: pa.Table, path: Path) -> None:
    _atomic(
        path,
        lambda tmp: pq.write_table(
            table,
            tmp,
            row_group_size=CHUNK_ROWS,
            use_dictionary=True,
            write_statistics=True,
            **_PARQUET_OPTIONS,
        ),
    )


def _write_transactions(
    cols: TransactionColumns, path: Path, progress: Callable[[str], None]
) -> None:
    """Stream row groups to ``path``; the next chunk is materialised while one is written."""

    def writer(tmp: Path) -> None:
        with (
            pq.ParquetWriter(
                tmp,
                TRANSACTIONS_SCHEMA,
                use_dictionary=_TX_DICTIONARY_COLUMNS,
                write_statistics=_TX_STATISTICS_COLUMNS,
                **_PARQUET_OPTIONS,
            ) as out,
            ThreadPoolExecutor(max_workers=1) as pool,
        ):
            starts = list(range(0, cols.n_rows, CHUNK_ROWS))
            pending = pool.submit(cols.table, 0, CHUNK_ROWS) if starts else None
            for i in range(len(starts)):
                assert pending is not None
                table = pending.result()
                nxt = i + 1
                pending = (
                    pool.submit(cols.table, starts[nxt], starts[nxt] + CHUNK_ROWS)
                    if nxt < len(starts)
                    else None
                )
                out.write_table(table, row_group_size=CHUNK_ROWS)
                del table
                progress("writing transactions")

    _atomic(path, writer)


def _summarise(
    base_options: dict[str, Any], batches: list[dict[str, Any]], n_customers: int, n_merch: int
) -> dict[str, Any]:
    """Top-level manifest summarising all batches."""
    by_scenario = {
        s: {
            "customers": sum(b["fraud"]["by_scenario"][s]["customers"] for b in batches),
            "transactions": sum(b["fraud"]["by_scenario"][s]["transactions"] for b in batches),
        }
        for s in SCENARIOS
    }
    last = batches[-1]
    return {
        "generator": GENERATOR_ID,
        "generator_version": GENERATOR_VERSION,
        "options": base_options,
        "files": {
            "customers": "customers/customers.parquet",
            "merchants": "merchants/merchants.parquet",
            "transactions": [b["path"] for b in batches],
        },
        "row_counts": {
            "customers": n_customers,
            "merchants": n_merch,
            "transactions": {b["file"]: b["row_counts"]["total"] for b in batches},
            "transactions_total": sum(b["row_counts"]["total"] for b in batches),
            "transactions_clean": sum(b["row_counts"]["clean"] for b in batches),
            "transactions_dirty": sum(b["row_counts"]["dirty"] for b in batches),
        },
        "fraud": {
            # victims come from consecutive slices of a fixed customer permutation
            "customers": min(n_customers, last["fraud_customer_cursor"]),
            "transactions": sum(b["fraud"]["transactions"] for b in batches),
            "by_scenario": by_scenario,
            "compromised_merchant_ids": [
                b["fraud"]["compromised_merchant_id"]
                for b in batches
                if b["fraud"]["compromised_merchant_id"] is not None
            ],
        },
        "dirty_rows": {
            "total": sum(b["dirty_rows"]["total"] for b in batches),
            "by_defect": {
                d: sum(b["dirty_rows"]["by_defect"][d] for b in batches) for d in DEFECTS
            },
            "rows": [r for b in batches for r in b["dirty_rows"]["rows"]],
        },
        "next_transaction_number": last["next_transaction_number"],
        "fraud_customer_cursor": last["fraud_customer_cursor"],
        "batches": batches,
    }


def write(
    data: GeneratedData, out_dir: str | Path, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Write the batch (plus customers/merchants for batch 0) and the manifest; return it."""
    out = Path(out_dir)
    step = progress or (lambda _msg: None)
    tx_path = out / "transactions" / data.transactions_file
    if data.previous_manifest is None:
        stale = _stale_batch_files(out, keep=data.transactions_file)
        _write_table(data.customers, out / "customers" / "customers.parquet")
        _write_table(data.merchants, out / "merchants" / "merchants.parquet")
        step("customers and merchants written")
        batches = [data.batch]
        base_options = data.batch["options"]
    else:
        if tx_path.exists():
            raise ConfigError(f"{tx_path} already exists; choose another --batch-name")
        existing = pq.read_table(out / "customers" / "customers.parquet", columns=["customer_id"])
        if not existing.column("customer_id").equals(data.customers.column("customer_id")):
            raise ConfigError(f"{out}/customers/customers.parquet does not match its manifest")
        stale = []
        batches = [*data.previous_manifest["batches"], data.batch]
        base_options = data.previous_manifest["options"]
    _write_transactions(data.transactions, tx_path, step)
    _write_table(label_feed.for_batch(data), out / "fraud_reports" / data.transactions_file)
    manifest = _summarise(base_options, batches, data.customers.num_rows, data.merchants.num_rows)
    text = manifest_json(manifest)
    _atomic(out / "manifest.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    for path in stale:
        path.unlink(missing_ok=True)
        (out / "fraud_reports" / path.name).unlink(missing_ok=True)
    step("manifest written")
    return manifest


def manifest_json(manifest: dict[str, Any]) -> str:
    """Indented JSON with one line per dirty row (fast, and diff-friendly)."""
    rows_lists: list[list[dict[str, Any]]] = []

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "rows" and isinstance(value, list):
                    rows_lists.append(value)
                    out[key] = f"\0ROWS{len(rows_lists) - 1}\0"
                else:
                    out[key] = strip(value)
            return out
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    text = json.dumps(strip(manifest), indent=2)
    for i, rows in enumerate(rows_lists):
        marker = json.dumps(f"\0ROWS{i}\0")
        at = text.index(marker)
        indent = " " * (at - text.rindex("\n", 0, at) - 1 - len('"rows": '))
        body = (
            "[\n" + ",\n".join(f"{indent}  {json.dumps(r)}" for r in rows) + f"\n{indent}]"
            if rows
            else "[]"
        )
        text = text[:at] + body + text[at + len(marker) :]
    return text + "\n"


def _stale_batch_files(out: Path, keep: str) -> list[Path]:
    """Batch files listed by an existing manifest that a fresh run would orphan."""
    try:
        old = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        names = [b["file"] for b in old.get("batches", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [
        out / "transactions" / name
        for name in names
        if isinstance(name, str) and name != keep and "/" not in name and name.endswith(".parquet")
    ]


def load_manifest(out_dir: str | Path) -> dict[str, Any]:
    """Read and sanity-check an existing manifest for --append."""
    out = Path(out_dir)
    path = out / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"--append needs an existing dataset, cannot read {path}: {exc.strerror}"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"--append: {path} is not valid JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("generator") != GENERATOR_ID:
        raise ConfigError(f"--append: {path} was not written by this generator ({GENERATOR_ID})")
    if manifest.get("generator_version") != GENERATOR_VERSION:
        raise ConfigError(
            f"--append: {path} was written by generator version "
            f"{manifest.get('generator_version')}, this is {GENERATOR_VERSION}"
        )
    for sub in ("customers/customers.parquet", "merchants/merchants.parquet"):
        if not (out / sub).is_file():
            raise ConfigError(f"--append: missing {out / sub}")
    return manifest
