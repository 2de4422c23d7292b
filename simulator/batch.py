"""One generated batch: the rows of every pattern combined, ordered, with the injected dirty
rows (GeneratedData), deterministic for options and seed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from simulator.config import (
    BAD_CURRENCIES,
    CATEGORY_TABLE,
    CHUNK_ROWS,
    CURRENCIES,
    CURRENCY_TABLE,
    DAY_S,
    DEFECT,
    DEFECTS,
    MICRO_LOOKALIKE_SHARE,
    SCENARIOS,
    SPREE_LOOKALIKE_SHARE,
    TRANSACTIONS_SCHEMA,
    TYPE_TABLE,
    US,
    ConfigError,
    GeneratorConfig,
    dirty_split,
    fraud_plan,
    n_dirty_rows,
)
from simulator.patterns import (
    Rows,
    Window,
    account_takeover,
    card_testing,
    compromised_merchant,
    legit_rows,
    micro_lookalikes,
    spree_lookalikes,
)
from simulator.world import (
    World,
    build_world,
    device_strings,
    epoch_day,
    ip_strings,
    iso,
    money,
    prefixed_ids,
    transaction_id_strings,
)

# --------------------------------------------------------------------------- batch


@dataclass
class TransactionColumns:
    """Final transaction rows (file order) in compact coded form."""

    tid: NDArray[np.int64]  # -1 = null
    cust: NDArray[np.int32]  # index into customer_ids, -1 = null
    merch: NDArray[np.int32]  # index into merchant_ids, -1 = null
    ts_us: NDArray[np.int64]
    amount: NDArray[np.float64]
    cur: NDArray[np.int8]  # index into CURRENCIES + BAD_CURRENCIES
    ttype: NDArray[np.int8]
    cat: NDArray[np.int8]
    dev: NDArray[np.uint64]
    ip: NDArray[np.uint32]
    fraud: NDArray[np.bool_]
    customer_ids: pa.Array  # customer ids followed by orphan ids
    merchant_ids: pa.Array

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.tid.size)

    def table(self, start: int = 0, stop: int | None = None) -> pa.Table:
        """Materialise rows [start, stop) as an Arrow table with TRANSACTIONS_SCHEMA."""
        stop = self.n_rows if stop is None else min(stop, self.n_rows)
        if stop - start > CHUNK_ROWS:
            return pa.concat_tables(self.iter_tables(start=start, stop=stop))
        s = slice(start, stop)
        cust, merch = self.cust[s], self.merch[s]
        return pa.table(
            [
                transaction_id_strings(self.tid[s]),
                pc.take(self.customer_ids, pa.array(cust, mask=cust < 0)),
                pc.take(self.merchant_ids, pa.array(merch, mask=merch < 0)),
                pa.array(self.ts_us[s], type=pa.timestamp("us")),
                pa.array(self.amount[s]),
                pc.take(CURRENCY_TABLE, pa.array(self.cur[s])),
                pc.take(TYPE_TABLE, pa.array(self.ttype[s])),
                pc.take(CATEGORY_TABLE, pa.array(self.cat[s])),
                device_strings(self.dev[s]),
                ip_strings(self.ip[s]),
                pa.array(self.fraud[s]),
            ],
            schema=TRANSACTIONS_SCHEMA,
        )

    def iter_tables(
        self, chunk_rows: int = CHUNK_ROWS, start: int = 0, stop: int | None = None
    ) -> Iterator[pa.Table]:
        """Materialise rows [start, stop) chunk by chunk (each chunk = one row group)."""
        stop = self.n_rows if stop is None else min(stop, self.n_rows)
        for lo in range(start, stop, chunk_rows):
            yield self.table(lo, min(lo + chunk_rows, stop))


@dataclass
class GeneratedData:
    """Result of :func:`generate`: tables, coded transactions and this batch's manifest entry."""

    config: GeneratorConfig
    batch_index: int
    customers: pa.Table
    merchants: pa.Table
    transactions: TransactionColumns
    batch: dict[str, Any]
    previous_manifest: dict[str, Any] | None = None

    @property
    def transactions_file(self) -> str:
        """File name of the transactions batch."""
        return f"{self.config.batch_name}.parquet"

    def transactions_table(self) -> pa.Table:
        """All transaction rows as one Arrow table."""
        return self.transactions.table()


def _inject_dirty(
    rng: np.random.Generator,
    clean: Rows,
    world: World,
    win: Window,
    dirty_total: int,
    id_start: int,
) -> tuple[TransactionColumns, list[tuple[int, str, int]]]:
    """Insert dirty rows, assign transaction ids; returns columns and (row, defect, tid) list."""
    n = clean.cust.size
    ts_us = clean.ts * US
    counts = dirty_split(dirty_total)
    defect = np.repeat(np.arange(len(DEFECTS), dtype=np.int8), list(counts.values()))
    legit = np.flatnonzero(clean.scenario < 0)
    base = rng.choice(legit, size=dirty_total, replace=False) if dirty_total else legit[:0]
    d = base.size

    d_cust = clean.cust[base].copy()
    d_merch = clean.merch[base].copy()
    d_ts = ts_us[base].copy()
    d_amount = clean.amount[base].copy()
    d_cur = clean.cur[base].copy()
    d_type = clean.ttype[base].copy()
    d_dev = clean.dev[base].copy()
    d_ip = clean.ip[base].copy()
    is_dup = defect <= DEFECT["conflicting_duplicate"]
    new = ~is_dup

    # fresh rows: same customer habits, new amount and a slightly later (or earlier) time
    d_amount[new] = money(d_amount[new] * rng.uniform(0.6, 1.4, int(new.sum())))
    delta = rng.integers(1, 601, d) * US
    moved = d_ts + delta
    d_ts = np.where(new, np.where(moved < win.end_s * US, moved, d_ts - delta), d_ts)

    sel = np.flatnonzero(defect == DEFECT["conflicting_duplicate"])
    factor = np.where(
        rng.random(sel.size) < 0.5,
        rng.uniform(1.15, 2.5, sel.size),
        rng.uniform(0.3, 0.85, sel.size),
    )
    changed = np.maximum(np.round(d_amount[sel] * factor, 2), 0.01)
    changed = np.where(changed == d_amount[sel], changed + 1.0, changed)
    d_amount[sel] = changed
    d_cust[defect == DEFECT["missing_customer_id"]] = -1
    d_merch[defect == DEFECT["missing_merchant_id"]] = -1
    sel = np.flatnonzero(defect == DEFECT["non_positive_amount"])
    d_amount[sel] = np.where(rng.random(sel.size) < 0.3, 0.0, -d_amount[sel])
    sel = np.flatnonzero(defect == DEFECT["unknown_currency"])
    d_cur[sel] = len(CURRENCIES) + rng.integers(0, len(BAD_CURRENCIES), sel.size)
    future = defect == DEFECT["future_timestamp"]
    d_ts[future] = (win.end_s + rng.integers(DAY_S, 400 * DAY_S + 1, int(future.sum()))) * US
    orphan = np.flatnonzero(defect == DEFECT["orphan_customer_id"])
    orphan_numbers = rng.integers(9_000_000, 10_000_000, orphan.size)  # never a real customer
    d_cust[orphan] = world.n_customers + np.arange(orphan.size)

    # position: inserted right after clean row `pos` (-1 = before everything)
    pos = np.searchsorted(ts_us, d_ts, side="right") - 1
    pos[future] = base[future]
    dup = np.flatnonzero(is_dup)
    pos[dup] = np.minimum(base[dup] + rng.integers(0, 2000, dup.size), n - 1)
    order = np.lexsort((np.arange(d), pos))
    pos_s = pos[order]
    final_dirty = pos_s + 1 + np.arange(d)
    final_clean = np.arange(n) + np.searchsorted(pos_s, np.arange(n), side="left")

    total = n + d

    def merge(clean_col: NDArray[Any], dirty_col: NDArray[Any]) -> NDArray[Any]:
        out = np.empty(total, dtype=clean_col.dtype)
        out[final_clean] = clean_col
        out[final_dirty] = dirty_col[order]
        return out

    d_cat = world.merchant_category[clean.merch[base]]
    cols = TransactionColumns(
        tid=np.full(total, -1, dtype=np.int64),
        cust=merge(clean.cust, d_cust),
        merch=merge(clean.merch, d_merch),
        ts_us=merge(ts_us, d_ts),
        amount=merge(clean.amount, d_amount),
        cur=merge(clean.cur, d_cur),
        ttype=merge(clean.ttype, d_type),
        cat=merge(world.merchant_category[clean.merch], d_cat),
        dev=merge(clean.dev, d_dev),
        ip=merge(clean.ip, d_ip),
        fraud=merge(clean.scenario >= 0, np.zeros(d, dtype=bool)),
        customer_ids=pa.concat_arrays(
            [
                world.customers.column("customer_id").combine_chunks(),
                prefixed_ids("C", orphan_numbers, 7),
            ]
        ),
        merchant_ids=world.merchants.column("merchant_id").combine_chunks(),
    )
    del ts_us
    defect_s = defect[order]
    fresh = np.ones(total, dtype=bool)
    fresh[final_dirty[defect_s <= DEFECT["missing_transaction_id"]]] = False
    cols.tid[fresh] = id_start + np.arange(int(fresh.sum()), dtype=np.int64)
    dup_s = np.flatnonzero(defect_s <= DEFECT["conflicting_duplicate"])
    cols.tid[final_dirty[dup_s]] = cols.tid[final_clean[base[order][dup_s]]]
    listing = [
        (int(r), DEFECTS[int(df)], int(cols.tid[r]))
        for r, df in zip(final_dirty, defect_s, strict=True)
    ]
    return cols, listing


def _tid_str(number: int) -> str | None:
    return None if number < 0 else f"T{number:010d}"


def generate(
    config: GeneratorConfig,
    previous_manifest: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> GeneratedData:
    """Generate one batch (batch 0, or the next batch after ``previous_manifest``)."""
    config.validate()
    step = progress or (lambda _msg: None)
    if previous_manifest is None:
        batch_index, id_start, cursor = 0, 1, 0
        world_seed, world_end = config.seed, config.end_date
    else:
        base = previous_manifest["options"]
        if int(base["customers"]) != config.customers:
            raise ConfigError(
                f"--append must keep the existing {base['customers']} customers "
                f"(got {config.customers})"
            )
        batch_index = len(previous_manifest["batches"])
        id_start = int(previous_manifest["next_transaction_number"])
        cursor = int(previous_manifest["fraud_customer_cursor"])
        world_seed, world_end = int(base["seed"]), date.fromisoformat(base["end_date"])

    world = build_world(world_seed, config.customers, world_end)
    step("customers and merchants")
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(1, batch_index)))
    end_s = epoch_day(config.end_date) * DAY_S
    win = Window(end_s - config.days * DAY_S, end_s, config.days)
    n_c, total = world.n_customers, config.transactions

    # fraud victims: next slice of the world's fixed permutation (disjoint across batches)
    plan = fraud_plan(n_c, config.fraud_rate)
    n_fraud = sum(plan)
    victims = world.fraud_order[(cursor + np.arange(n_fraud)) % n_c]
    v_ct, v_ato, v_cm = np.split(victims, [plan[0], plan[0] + plan[1]])
    parts = [card_testing(rng, world, v_ct, win), account_takeover(rng, world, v_ato, win)]
    compromised: int | None = None
    if v_cm.size:
        visits, cm_rows, compromised = compromised_merchant(rng, world, v_cm, win)
        parts += [visits, cm_rows]

    # legitimate look-alikes that overlap with fraud patterns
    others = np.setdiff1d(np.arange(n_c, dtype=np.int32), victims)
    n_spree = min(round(SPREE_LOOKALIKE_SHARE * n_c), total // 50, others.size // 4)
    n_micro = min(round(MICRO_LOOKALIKE_SHARE * n_c), total // 200, others.size // 4)
    look = rng.choice(others, size=n_spree + n_micro, replace=False)
    parts += [
        spree_lookalikes(rng, world, look[:n_spree], win),
        micro_lookalikes(rng, world, look[n_spree:], win),
    ]
    used = sum(p.cust.size for p in parts)
    step("fraud scenarios")

    weights = world.activity / world.activity.sum()
    counts = rng.multinomial(total - used, weights)
    parts.insert(0, legit_rows(rng, world, counts, win, config.shift))
    rows = Rows.concat(parts)
    del parts
    rows.ts = np.clip(rows.ts, win.start_s, win.end_s - 1)
    step("legitimate transactions")
    # sort by (timestamp, generation index): unique keys, so any sort is deterministic
    key = ((rows.ts - win.start_s) << 31) | np.arange(rows.ts.size, dtype=np.int64)
    key.sort()
    key &= (1 << 31) - 1
    rows = rows.take(key)
    del key
    step("ordering")

    d_total = n_dirty_rows(total, config.dirty_rate)
    cols, listing = _inject_dirty(rng, rows, world, win, d_total, id_start)
    step("dirty rows")

    scen_counts = {
        name: {
            "customers": int(plan[i]),
            "transactions": int(np.count_nonzero(rows.scenario == i)),
        }
        for i, name in enumerate(SCENARIOS)
    }
    n_fraud_rows = int(np.count_nonzero(rows.scenario >= 0))
    file_name = f"{config.batch_name}.parquet"
    fresh_ids = cols.tid[cols.tid >= 0]
    batch: dict[str, Any] = {
        "batch_index": batch_index,
        "batch_name": config.batch_name,
        "file": file_name,
        "path": f"transactions/{file_name}",
        "options": config.options(),
        "window": {"start": iso(win.start_s), "end": iso(win.end_s)},
        "transaction_ids": {
            "first": _tid_str(int(fresh_ids.min())) if fresh_ids.size else None,
            "last": _tid_str(int(fresh_ids.max())) if fresh_ids.size else None,
        },
        "row_counts": {
            "total": cols.n_rows,
            "clean": int(rows.cust.size),
            "dirty": len(listing),
            "fraud": n_fraud_rows,
        },
        "fraud": {
            "customers": int(n_fraud),
            "transactions": n_fraud_rows,
            "by_scenario": scen_counts,
            "compromised_merchant_id": (None if compromised is None else f"M{compromised + 1:06d}"),
            "legit_lookalike_customers": {
                "big_purchase_spree": int(n_spree),
                "micro_purchase_burst": int(n_micro),
            },
        },
        "dirty_rows": {
            "total": len(listing),
            "by_defect": dirty_split(d_total),
            "rows": [
                {"file": file_name, "row_number": r, "defect": df, "transaction_id": _tid_str(t)}
                for r, df, t in listing
            ],
        },
        "next_transaction_number": int(id_start + fresh_ids.size),
        "fraud_customer_cursor": int(cursor + n_fraud),
    }
    return GeneratedData(
        config=config,
        batch_index=batch_index,
        customers=world.customers,
        merchants=world.merchants,
        transactions=cols,
        batch=batch,
        previous_manifest=previous_manifest,
    )
