"""Deterministic synthetic card-transaction generator: the command line (``fraud-generate``,
``python -m simulator``). The parts: ``config`` (settings, tables, schemas), ``world``
(customers, merchants), ``patterns`` (legitimate rows, fraud scenarios, look-alikes),
``batch`` (one generated batch with its dirty rows), ``output`` (files and manifest),
``label_feed`` (the delayed fraud reports).

Writes ``customers/customers.parquet``, ``merchants/merchants.parquet``,
``transactions/<batch-name>.parquet`` and ``manifest.json`` below ``--out``.
Transactions carry labelled fraud (``is_fraud``) and a known number of injected
dirty rows whose file positions are listed in the manifest.  Same options and
seed give byte-identical files; nothing depends on the wall clock.

The committed test fixture ``tests/fixtures/small`` is produced by
(``FIXTURE_ARGS``)::

    python -m simulator --customers 400 --transactions 8000 --days 60 \
        --fraud-rate 0.05 --dirty-rate 0.01 --seed 7 --out tests/fixtures/small --quiet
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from datetime import date
from pathlib import Path

from tqdm import tqdm

from simulator.batch import generate
from simulator.config import (
    CHUNK_ROWS,
    DEFAULT_END_DATE,
    PROGRESS_MIN_ROWS,
    ConfigError,
    GeneratorConfig,
    n_dirty_rows,
)
from simulator.output import load_manifest, write

# --------------------------------------------------------------------------- CLI


def _check_writable(out: Path) -> None:
    """Raise ConfigError unless ``out`` exists as a writable folder or can be created."""
    probe = out.absolute()
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"--out {out}: {probe} exists and is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: folder {probe} is not writable")
    for sub in ("customers", "merchants", "transactions", "manifest.json"):
        p = out / sub
        if sub != "manifest.json" and p.exists() and not p.is_dir():
            raise ConfigError(f"--out {out}: {p} exists and is not a folder")
        if sub == "manifest.json" and p.is_dir():
            raise ConfigError(f"--out {out}: {p} is a folder")


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}, expected YYYY-MM-DD") from exc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Generate deterministic synthetic card transactions (Parquet + manifest).",
    )
    p.add_argument("--customers", type=int, default=20_000, help="number of customers (>= 10)")
    p.add_argument("--transactions", type=int, default=500_000, help="clean transaction rows")
    p.add_argument("--days", type=int, default=90, help="days covered, ending at --end-date")
    p.add_argument("--fraud-rate", type=float, default=0.01, help="share of fraudulent customers")
    p.add_argument("--dirty-rate", type=float, default=0.005, help="dirty rows / --transactions")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--end-date",
        type=_parse_date,
        default=DEFAULT_END_DATE,
        help="exclusive UTC end of the window [end-date - days, end-date) (default %(default)s)",
    )
    p.add_argument("--out", default="data/raw", help="output folder")
    p.add_argument(
        "--batch-name",
        default=None,
        help="transactions file stem (default batch_0000 / next batch)",
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="write only a new transactions batch (default name batch_NNNN) for the customers "
        "and merchants already in --out; --customers is then taken from its manifest",
    )
    p.add_argument("--shift", action="store_true", help="drift scenario (bigger, later, weekend)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage / the error
        return int(exc.code or 0)
    began = time.perf_counter()
    out = Path(args.out)
    try:
        previous = None
        customers, end_date = args.customers, args.end_date
        batch_name = args.batch_name or "batch_0000"
        if args.append:
            # numeric options first so bad values fail before the folder is read
            GeneratorConfig(
                transactions=args.transactions, days=args.days, fraud_rate=args.fraud_rate,
                dirty_rate=args.dirty_rate, seed=args.seed, customers=10,
            ).validate(check_fraud_budget=False)  # fmt: skip
            previous = load_manifest(out)
            customers = int(previous["options"]["customers"])
            batch_name = args.batch_name or f"batch_{len(previous['batches']):04d}"
        config = GeneratorConfig(
            customers=customers,
            transactions=args.transactions,
            days=args.days,
            fraud_rate=args.fraud_rate,
            dirty_rate=args.dirty_rate,
            seed=args.seed,
            end_date=end_date,
            batch_name=batch_name,
            shift=args.shift,
        )
        config.validate()
        _check_writable(out)
        if args.append and (out / "transactions" / f"{batch_name}.parquet").exists():
            raise ConfigError(f"{out}/transactions/{batch_name}.parquet already exists")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    n_rows = config.transactions + n_dirty_rows(config.transactions, config.dirty_rate)
    n_chunks = max(1, math.ceil(n_rows / CHUNK_ROWS))
    bar = tqdm(
        total=5 + n_chunks + (1 if args.append else 2),
        disable=args.quiet or config.transactions < PROGRESS_MIN_ROWS,
        desc="datagen",
        unit="step",
        file=sys.stderr,
    )

    def step(msg: str) -> None:
        bar.set_postfix_str(msg, refresh=False)
        bar.update(1)

    try:
        data = generate(config, previous, step)
        manifest = write(data, out, step)
    except ConfigError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        bar.close()
        print(f"error: cannot write to {out}: {exc}", file=sys.stderr)
        return 1
    bar.close()
    if not args.quiet:
        b = manifest["batches"][-1]
        print(
            f"wrote {b['row_counts']['clean']:,} transactions + {b['row_counts']['dirty']:,} dirty "
            f"rows ({b['fraud']['transactions']:,} fraud, {b['fraud']['customers']:,} fraudulent "
            f"customers) to {out / 'transactions' / b['file']} "
            f"in {time.perf_counter() - began:.1f}s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
