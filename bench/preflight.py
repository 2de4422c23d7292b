"""Pre-flight checks: bad sizes, folders, disk or memory exit 2 before any work."""

import os
import shutil
import tempfile
from pathlib import Path

import psutil

from bench.config import (
    DISK_BYTES_PER_TRANSACTION,
    DISK_FIXED_BYTES,
    GIB,
    MAX_TRANSACTIONS,
    NOTEBOOK_RAM_BYTES_PER_TRANSACTION,
    PROJECT_ROOT,
    BenchConfig,
    BenchInputError,
    dbt_executable,
    increment_fraud_rate,
)

# --------------------------------------------------------------------------------------------
# Pre-flight checks (exit 2 before any work)
# --------------------------------------------------------------------------------------------


def estimate_disk_bytes(config: BenchConfig) -> int:
    return DISK_FIXED_BYTES + DISK_BYTES_PER_TRANSACTION * config.transactions


def _check_out_dir(out: Path, is_default: bool) -> None:
    protected = [PROJECT_ROOT / name for name in ("data", "warehouse", ".mlflow", "target")]
    resolved = out.resolve()
    for folder in protected:
        if resolved == folder.resolve() or folder.resolve() in resolved.parents:
            raise BenchInputError(
                f"--out {out} is inside the main job's {folder.name}/: choose another folder"
            )
    if out.exists():
        if not out.is_dir():
            raise BenchInputError(f"--out {out} exists and is not a folder")
    elif is_default:
        parent = next((p for p in resolved.parents if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK | os.X_OK):
            raise BenchInputError(f"cannot create --out {out}: {parent} is not writable")
        return
    elif not out.parent.exists():
        raise BenchInputError(
            f"--out {out}: the folder does not exist and neither does its parent {out.parent}; "
            "create it first"
        )
    else:
        if not os.access(out.parent, os.W_OK | os.X_OK):
            raise BenchInputError(f"--out {out} does not exist and {out.parent} is not writable")
        return
    if not os.access(out, os.W_OK | os.X_OK):
        raise BenchInputError(f"--out {out} is not writable")
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".bench-write-check-"):
            pass
    except OSError as exc:
        raise BenchInputError(f"--out {out} is not writable: {exc}") from exc


def preflight(config: BenchConfig, is_default_out: bool) -> list[str]:
    """Validate sizes, output folder, free disk and memory; returns notes. Raises
    BenchInputError with a message for the user."""
    from simulator.config import ConfigError, GeneratorConfig

    notes: list[str] = []
    if config.transactions <= 0:
        raise BenchInputError(
            f"--transactions must be a positive integer (got {config.transactions})"
        )
    if config.transactions > MAX_TRANSACTIONS:
        raise BenchInputError(
            f"--transactions {config.transactions:,} is beyond what this harness supports "
            f"(max {MAX_TRANSACTIONS:,})"
        )
    if config.customers <= 0:
        raise BenchInputError(f"--customers must be a positive integer (got {config.customers})")
    if config.latency_calls < 1:
        raise BenchInputError("--latency-calls must be >= 1")
    try:
        GeneratorConfig(
            customers=config.customers,
            transactions=config.transactions,
            days=config.days,
            seed=config.seed,
        ).validate()
        if "incremental" in config.parts:
            GeneratorConfig(
                customers=config.customers,
                transactions=config.increment,
                days=config.days,
                seed=config.seed + 1,
                fraud_rate=increment_fraud_rate(config.increment, config.customers),
                batch_name="batch_0001",
            ).validate()
    except ConfigError as exc:
        raise BenchInputError(f"impossible size: {exc}") from exc

    _check_out_dir(config.out, is_default_out)
    probe = next(p for p in [config.out, *config.out.resolve().parents] if p.exists())
    free = shutil.disk_usage(probe).free
    need = estimate_disk_bytes(config)
    if free < need:
        raise BenchInputError(
            f"not enough free disk space in {probe}: {free / GIB:.1f} GiB free, the benchmark "
            f"needs about {need / GIB:.1f} GiB for {config.transactions:,} transactions "
            "(data, two warehouses, MLflow store)"
        )
    if "notebook" in config.parts:
        need_ram = NOTEBOOK_RAM_BYTES_PER_TRANSACTION * config.transactions
        total = psutil.virtual_memory().total
        if need_ram > 0.8 * total:
            raise BenchInputError(
                f"impossible size for the notebook part on this machine: pandas needs about "
                f"{need_ram / GIB:.1f} GiB for {config.transactions:,} transactions, the machine "
                f"has {total / GIB:.1f} GiB (leave out the part: --parts without notebook)"
            )
    if not (PROJECT_ROOT / "dbt_project.yml").exists():
        raise BenchInputError(f"{PROJECT_ROOT} is not the dbt project (no dbt_project.yml)")
    dbt_executable()
    notes.append(f"free disk {free / GIB:.1f} GiB (estimate needed {need / GIB:.1f} GiB)")
    return notes
