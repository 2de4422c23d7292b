"""Deterministic synthetic card-transaction generator.

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

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray
from tqdm import tqdm

from simulator import label_feed

GENERATOR_VERSION = "1.0.0"
# The identity written into manifest.json (and checked by --append): the generator's name
# before it moved to simulator/, kept so existing data sets and the fixture stay valid.
GENERATOR_ID = "ml.datagen"

FIXTURE_ARGS: list[str] = [
    "--customers", "400",
    "--transactions", "8000",
    "--days", "60",
    "--fraud-rate", "0.05",
    "--dirty-rate", "0.01",
    "--seed", "7",
    "--out", "tests/fixtures/small",
    "--quiet",
]  # fmt: skip

DEFAULT_END_DATE = date(2026, 11, 1)
MAX_CUSTOMERS = 8_999_999  # 7-digit ids; C9xxxxxx stays free for orphan rows
MAX_TRANSACTIONS = 1_000_000_000
MAX_DAYS = 3650
PROGRESS_MIN_ROWS = 200_000
CHUNK_ROWS = 1 << 20  # rows per Parquet row group / materialisation chunk

CATEGORIES: tuple[str, ...] = (
    "grocery", "restaurant", "gas_station", "online_retail", "electronics",
    "travel", "entertainment", "pharmacy", "clothing", "utilities",
)  # fmt: skip
TRANSACTION_TYPES: tuple[str, ...] = ("purchase", "online", "contactless", "atm_withdrawal")
CURRENCIES: tuple[str, ...] = ("USD", "EUR", "GBP", "CAD")
BAD_CURRENCIES: tuple[str, ...] = ("XXX", "BTC", "")
SCENARIOS: tuple[str, ...] = ("card_testing", "account_takeover", "compromised_merchant")
DEFECTS: tuple[str, ...] = (
    "exact_duplicate",
    "conflicting_duplicate",
    "missing_transaction_id",
    "missing_customer_id",
    "missing_merchant_id",
    "non_positive_amount",
    "unknown_currency",
    "future_timestamp",
    "orphan_customer_id",
)
# legitimate customers given a fraud-like episode (overlap for the models)
SPREE_LOOKALIKE_SHARE = 0.0015
MICRO_LOOKALIKE_SHARE = 0.002
MAX_FRAUD_ROWS_PER_CUSTOMER = 37  # card_testing: 30 probes + 1 purchase (+ slack)

CUSTOMERS_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("first_name", pa.string()),
        ("last_name", pa.string()),
        ("email", pa.string()),
        ("phone", pa.string()),
        ("city", pa.string()),
        ("state", pa.string()),
        ("country", pa.string()),
        ("created_date", pa.date32()),
    ]
)
MERCHANTS_SCHEMA = pa.schema(
    [
        ("merchant_id", pa.string()),
        ("merchant_name", pa.string()),
        ("merchant_category", pa.string()),
        ("country", pa.string()),
    ]
)
TRANSACTIONS_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("customer_id", pa.string()),
        ("merchant_id", pa.string()),
        ("transaction_timestamp", pa.timestamp("us")),
        ("amount", pa.float64()),
        ("currency", pa.string()),
        ("transaction_type", pa.string()),
        ("merchant_category", pa.string()),
        ("device_id", pa.string()),
        ("ip_address", pa.string()),
        ("is_fraud", pa.bool_()),
    ]
)

_CATEGORY_TABLE = pa.array(CATEGORIES, pa.string())
_TYPE_TABLE = pa.array(TRANSACTION_TYPES, pa.string())
_CURRENCY_TABLE = pa.array(CURRENCIES + BAD_CURRENCIES, pa.string())
_CAT = {name: i for i, name in enumerate(CATEGORIES)}
_TYPE = {name: i for i, name in enumerate(TRANSACTION_TYPES)}
_CUR = {name: i for i, name in enumerate(CURRENCIES)}
_DEFECT = {name: i for i, name in enumerate(DEFECTS)}

# Merchant mix, amount medians / log-sigmas and transaction-type mix per category.
_CATEGORY_SHARE = np.array([0.18, 0.20, 0.10, 0.14, 0.05, 0.04, 0.08, 0.06, 0.09, 0.06])
_AMOUNT_MEDIAN = np.array([40.0, 30.0, 45.0, 55.0, 300.0, 480.0, 45.0, 25.0, 70.0, 110.0])
_AMOUNT_SIGMA = np.array([0.55, 0.6, 0.4, 0.9, 0.7, 0.55, 0.8, 0.7, 0.7, 0.5])
_TYPE_MIX = np.array(
    [  # purchase, online, contactless, atm_withdrawal
        [0.45, 0.05, 0.45, 0.05],
        [0.45, 0.05, 0.50, 0.00],
        [0.50, 0.00, 0.45, 0.05],
        [0.00, 1.00, 0.00, 0.00],
        [0.40, 0.45, 0.15, 0.00],
        [0.10, 0.85, 0.05, 0.00],
        [0.30, 0.40, 0.30, 0.00],
        [0.50, 0.05, 0.42, 0.03],
        [0.45, 0.30, 0.25, 0.00],
        [0.00, 1.00, 0.00, 0.00],
    ]
)
_ATM_AMOUNTS = np.array([20.0, 40.0, 60.0, 80.0, 100.0, 140.0, 200.0, 300.0])
_ATM_P = np.array([0.12, 0.2, 0.18, 0.1, 0.2, 0.05, 0.1, 0.05])


def _cdf(weights: Sequence[float] | NDArray[Any]) -> NDArray[np.float64]:
    """Cumulative distribution with an exact 1.0 at the end."""
    c = np.cumsum(np.asarray(weights, dtype=np.float64))
    c /= c[-1]
    c[-1] = 1.0
    return c


_LUT_BITS = 16


def _lut(cdf: NDArray[np.float64]) -> NDArray[np.int16]:
    """Inverse-CDF lookup table over 2**16 equal-probability buckets (fast categorical draws)."""
    mid = (np.arange(1 << _LUT_BITS) + 0.5) / (1 << _LUT_BITS)
    return np.searchsorted(cdf, mid, side="right").astype(np.int16)


def _draw(rng: np.random.Generator, lut: NDArray[np.int16], n: int) -> NDArray[np.int16]:
    """``n`` draws from the distribution behind ``lut``."""
    return lut[rng.integers(0, 1 << _LUT_BITS, n, dtype=np.uint16)]


# Hour-of-day profiles for "day people" and "night people".
_DAY_HOURS = _cdf(
    [0.6, 0.35, 0.2, 0.15, 0.15, 0.3, 0.8, 1.8, 3.0, 3.6, 4.0, 4.6,
     5.6, 5.4, 4.6, 4.4, 4.8, 5.6, 6.2, 5.8, 4.6, 3.4, 2.2, 1.2]
)  # fmt: skip
_NIGHT_HOURS = _cdf(
    [6.0, 5.5, 5.0, 4.5, 3.5, 2.0, 1.0, 0.6, 0.5, 0.5, 0.5, 0.6,
     0.8, 0.8, 0.8, 0.8, 1.0, 1.2, 1.6, 2.0, 2.8, 3.8, 4.8, 5.6]
)  # fmt: skip
_HOUR_LUT = np.concatenate([_lut(_DAY_HOURS), _lut(_NIGHT_HOURS)])  # day table, night table
_TYPE_LUT = np.stack([_lut(_cdf(row)) for row in _TYPE_MIX])  # (category, bucket)
# Share of everyday transactions per category; each customer's own mix is a Dirichlet draw
# around it (travel/electronics stay rare for most, frequent for a few heavy spenders).
_CATEGORY_FREQUENCY = np.array([0.22, 0.22, 0.11, 0.13, 0.025, 0.02, 0.07, 0.07, 0.075, 0.05])
_MIX_CONCENTRATION = 20.0

_FIRST_NAMES = (
    "james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda", "david",
    "elizabeth", "william", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah",
    "charles", "karen", "christopher", "lisa", "daniel", "nancy", "matthew", "betty", "anthony",
    "sandra", "mark", "ashley", "donald", "kimberly", "steven", "emily", "paul", "donna", "andrew",
    "michelle", "joshua", "carol", "kenneth", "amanda", "kevin", "melissa", "brian", "deborah",
    "george", "stephanie", "timothy", "rebecca", "ronald", "laura", "jason", "sharon", "edward",
    "cynthia", "jeffrey", "kathleen", "ryan", "amy", "jacob", "angela", "gary", "helen",
    "nicholas", "anna", "eric", "brenda", "jonathan", "pamela", "stephen", "emma", "larry",
    "nicole", "justin", "samantha", "scott", "katherine", "brandon", "christine", "benjamin",
    "debra", "samuel", "rachel", "gregory", "carolyn", "alexander", "janet", "frank", "maria",
    "raymond", "olivia", "patrick", "heather", "jack", "diane", "dennis", "julie"
)  # fmt: skip
_LAST_NAMES = (
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez",
    "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor",
    "moore", "jackson", "martin", "lee", "perez", "thompson", "white", "harris", "sanchez",
    "clark", "ramirez", "lewis", "robinson", "walker", "young", "allen", "king", "wright", "scott",
    "torres", "nguyen", "hill", "flores", "green", "adams", "nelson", "baker", "hall", "rivera",
    "campbell", "mitchell", "carter", "roberts", "gomez", "phillips", "evans", "turner", "diaz",
    "parker", "cruz", "edwards", "collins", "reyes", "stewart", "morris", "morales", "murphy",
    "cook", "rogers", "gutierrez", "ortiz", "morgan", "cooper", "peterson", "bailey", "reed",
    "kelly", "howard", "ramos", "kim", "cox", "ward", "richardson", "watson", "brooks", "chavez",
    "wood", "james", "bennett", "gray", "mendoza", "ruiz", "hughes", "price", "alvarez",
    "castillo", "sanders", "patel", "myers", "long", "ross", "foster", "jimenez"
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "mail.test", "inbox.example", "post.test", "example.org")
_EMAIL_DOMAIN_P = (0.34, 0.24, 0.18, 0.14, 0.10)

_COUNTRIES = ("US", "CA", "GB", "DE", "FR")
_COUNTRY_P = (0.90, 0.04, 0.03, 0.015, 0.015)
_COUNTRY_CURRENCY = (_CUR["USD"], _CUR["CAD"], _CUR["GBP"], _CUR["EUR"], _CUR["EUR"])
_COUNTRY_PHONE = ("1", "1", "44", "49", "33")
_CITIES: tuple[tuple[tuple[str, str], ...], ...] = (
    (
        ("New York", "NY"), ("Los Angeles", "CA"), ("Chicago", "IL"), ("Houston", "TX"),
        ("Phoenix", "AZ"), ("Philadelphia", "PA"), ("San Antonio", "TX"), ("San Diego", "CA"),
        ("Dallas", "TX"), ("Austin", "TX"), ("Jacksonville", "FL"), ("Columbus", "OH"),
        ("Charlotte", "NC"), ("Indianapolis", "IN"), ("Seattle", "WA"), ("Denver", "CO"),
        ("Boston", "MA"), ("Nashville", "TN"), ("Portland", "OR"), ("Atlanta", "GA"),
        ("Miami", "FL"), ("Minneapolis", "MN"), ("Detroit", "MI"), ("Baltimore", "MD"),
        ("Salt Lake City", "UT"), ("Kansas City", "MO"), ("Raleigh", "NC"), ("Tampa", "FL"),
    ),
    (("Toronto", "ON"), ("Vancouver", "BC"), ("Montreal", "QC"), ("Calgary", "AB")),
    (("London", "ENG"), ("Manchester", "ENG"), ("Edinburgh", "SCT"), ("Cardiff", "WLS")),
    (("Berlin", "BE"), ("Munich", "BY"), ("Hamburg", "HH")),
    (("Paris", "IDF"), ("Lyon", "ARA"), ("Marseille", "PAC")),
)  # fmt: skip

_NAME_PREFIX = (
    "Blue", "Golden", "Sunset", "Maple", "River", "Summit", "Urban", "Lakeside", "Pioneer",
    "Harbor", "Cedar", "Silver", "Northside", "Evergreen", "Liberty", "Redwood", "Prairie",
    "Coastal", "Metro", "Highland",
)  # fmt: skip
_NAME_STEM: tuple[tuple[str, ...], ...] = (
    ("Market", "Grocers", "Foods", "Fresh Mart", "Pantry"),
    ("Grill", "Bistro", "Diner", "Pizzeria", "Noodle House", "Cafe", "Taqueria"),
    ("Fuel", "Gas & Go", "Petroleum", "Service Station"),
    ("Online", "Shop", "Direct", "Outlet", "Marketplace"),
    ("Electronics", "Tech", "Digital", "Gadgets"),
    ("Travel", "Airways", "Tours", "Hotels", "Getaways"),
    ("Cinema", "Arcade", "Games", "Tickets", "Streaming"),
    ("Pharmacy", "Drugstore", "Health", "Apothecary"),
    ("Apparel", "Boutique", "Outfitters", "Clothing Co"),
    ("Energy", "Water", "Telecom", "Power & Light"),
)

_RESIDENTIAL_OCTETS = np.array(
    [24, 47, 50, 67, 68, 69, 71, 73, 75, 76, 96, 97, 98, 99, 107, 108, 174, 184], np.uint32
)
_HOSTING_OCTETS = np.array([45, 104, 139, 142, 159, 167, 178, 185, 188, 193, 198, 209], np.uint32)
_HEX_CHARS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

_ONLINE_CATS = ("online_retail", "entertainment", "clothing", "electronics", "utilities")
_ATO_CATS = ("electronics", "travel", "online_retail")
_CLONE_CATS = ("electronics", "clothing", "grocery", "gas_station")
_SKIMMED_CATS = ("restaurant", "gas_station", "grocery", "clothing", "online_retail")

DAY_S = 86_400
US = 1_000_000


class ConfigError(ValueError):
    """Invalid generator options (the CLI maps this to exit code 2)."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Options of one generator run (one transactions batch)."""

    customers: int = 20_000
    transactions: int = 500_000
    days: int = 90
    fraud_rate: float = 0.01
    dirty_rate: float = 0.005
    seed: int = 42
    end_date: date = DEFAULT_END_DATE
    batch_name: str = "batch_0000"
    shift: bool = False

    def validate(self, check_fraud_budget: bool = True) -> None:
        """Raise ConfigError listing every invalid option."""
        errors: list[str] = []
        for name, value in (
            ("customers", self.customers),
            ("transactions", self.transactions),
            ("days", self.days),
        ):
            if value <= 0:
                errors.append(f"--{name} must be a positive integer (got {value})")
        if 0 < self.customers < 10:
            errors.append(f"--customers must be >= 10 (got {self.customers})")
        if self.customers > MAX_CUSTOMERS:
            errors.append(f"--customers must be <= {MAX_CUSTOMERS} (got {self.customers})")
        if self.transactions > MAX_TRANSACTIONS:
            errors.append(f"--transactions must be <= {MAX_TRANSACTIONS}")
        if self.days > MAX_DAYS:
            errors.append(f"--days must be <= {MAX_DAYS} (got {self.days})")
        for name, rate in (("fraud-rate", self.fraud_rate), ("dirty-rate", self.dirty_rate)):
            if not (math.isfinite(rate) and 0.0 <= rate <= 0.5):
                errors.append(f"--{name} must be within [0, 0.5] (got {rate})")
        if self.seed < 0:
            errors.append(f"--seed must be >= 0 (got {self.seed})")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", self.batch_name):
            errors.append(
                f"--batch-name must be 1-100 characters of [A-Za-z0-9_.-] (got {self.batch_name!r})"
            )
        if check_fraud_budget and not errors and self.fraud_rate > 0:
            n_fraud = sum(fraud_plan(self.customers, self.fraud_rate))
            need = n_fraud * MAX_FRAUD_ROWS_PER_CUSTOMER
            if need > self.transactions // 2:
                errors.append(
                    f"--transactions {self.transactions} is too small for {n_fraud} fraudulent "
                    f"customers (they may need up to {need} fraud transactions, which must be at "
                    "most half of --transactions); raise --transactions or lower --fraud-rate"
                )
        if errors:
            raise ConfigError("; ".join(errors))

    def options(self) -> dict[str, Any]:
        """JSON-ready option values as recorded in the manifest."""
        return {
            "customers": self.customers,
            "transactions": self.transactions,
            "days": self.days,
            "fraud_rate": self.fraud_rate,
            "dirty_rate": self.dirty_rate,
            "seed": self.seed,
            "end_date": self.end_date.isoformat(),
            "batch_name": self.batch_name,
            "shift": self.shift,
        }


def fraud_plan(customers: int, fraud_rate: float) -> tuple[int, int, int]:
    """Number of fraudulent customers per scenario (card testing, ATO, compromised merchant)."""
    n = round(customers * fraud_rate)
    n_ct = round(0.4 * n)
    n_ato = round(0.4 * n)
    return n_ct, n_ato, n - n_ct - n_ato


def n_dirty_rows(transactions: int, dirty_rate: float) -> int:
    """Number of injected dirty rows: round(dirty_rate * transactions)."""
    return round(dirty_rate * transactions)


def dirty_split(total: int) -> dict[str, int]:
    """Split ``total`` dirty rows across DEFECTS as evenly as possible (earlier get extras)."""
    base, extra = divmod(total, len(DEFECTS))
    return {d: base + (1 if i < extra else 0) for i, d in enumerate(DEFECTS)}


def n_merchants(customers: int) -> int:
    """Merchant count: customers / 20, at least 50."""
    return max(50, customers // 20)


# --------------------------------------------------------------------------- helpers


def _epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None).isoformat()


def _prefixed_ids(prefix: str, numbers: NDArray[np.int64], width: int) -> pa.Array:
    """Vectorised ``prefix + zero-padded number`` strings (prefix is one character)."""
    shifted = pa.array(numbers.astype(np.int64) + 10**width)
    return pc.utf8_replace_slice(pc.cast(shifted, pa.string()), start=0, stop=1, replacement=prefix)


def _fixed_width_strings(
    chars: NDArray[np.uint8], valid: NDArray[np.bool_] | None = None
) -> pa.Array:
    """StringArray straight from an (n, width) ASCII byte matrix (null where not ``valid``)."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    bitmap, nulls = None, 0
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = int(n - np.count_nonzero(valid))
    data = pa.py_buffer(np.ascontiguousarray(chars).ravel())
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), data, bitmap, nulls)


def _transaction_id_strings(numbers: NDArray[np.int64]) -> pa.Array:
    """``T`` + 10 zero-padded digits; null where the number is negative."""
    rows = np.empty((11, numbers.size), dtype=np.uint8)
    rows[0] = ord("T")
    v = np.where(numbers < 0, 0, numbers)
    hi = (v // 100_000).astype(np.uint32)
    lo = (v - hi.astype(np.int64) * 100_000).astype(np.uint32)
    for k in range(5, 0, -1):
        q = hi // 10
        rows[k] = hi - q * 10 + 48
        hi = q
        q = lo // 10
        rows[k + 5] = lo - q * 10 + 48
        lo = q
    return _fixed_width_strings(rows.T, numbers >= 0)


def _device_strings(codes: NDArray[np.uint64]) -> pa.Array:
    """``dev-`` plus 12 hex digits from the low 48 bits of each code."""
    raw = np.ascontiguousarray(codes, dtype=">u8").view(np.uint8).reshape(-1, 8)[:, 2:]
    chars = np.empty((codes.size, 16), dtype=np.uint8)
    chars[:, :4] = np.frombuffer(b"dev-", dtype=np.uint8)
    chars[:, 4::2] = _HEX_CHARS[raw >> 4]
    chars[:, 5::2] = _HEX_CHARS[raw & 15]
    return _fixed_width_strings(chars)


def _ip_strings(codes: NDArray[np.uint32]) -> pa.Array:
    """Dotted IPv4 strings from uint32 codes (formats each distinct address once)."""
    encoded = pc.dictionary_encode(pa.array(codes))
    distinct = encoded.dictionary.to_numpy()
    octets = [
        pc.cast(pa.array(((distinct >> s) & 255).astype(np.uint8)), pa.string())
        for s in (24, 16, 8, 0)
    ]
    return pc.take(pc.binary_join_element_wise(*octets, "."), encoded.indices)


def _loguniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> NDArray[np.float64]:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _money(x: NDArray[np.float64], floor: float = 0.5) -> NDArray[np.float64]:
    return np.maximum(np.round(x, 2), floor)


def _new_devices(rng: np.random.Generator, n: int) -> NDArray[np.uint64]:
    return rng.integers(0, 1 << 48, size=n, dtype=np.uint64)


def _random_ips(rng: np.random.Generator, n: int, hosting_share: float) -> NDArray[np.uint32]:
    hosting = rng.random(n) < hosting_share
    first = np.where(
        hosting,
        _HOSTING_OCTETS[rng.integers(0, _HOSTING_OCTETS.size, n)],
        _RESIDENTIAL_OCTETS[rng.integers(0, _RESIDENTIAL_OCTETS.size, n)],
    ).astype(np.uint32)
    mid = rng.integers(0, 1 << 16, n, dtype=np.uint32)
    last = rng.integers(1, 255, n, dtype=np.uint32)
    return ((first << 24) | (mid << 8) | last).astype(np.uint32)


def _types(rng: np.random.Generator, cat: NDArray[np.int8]) -> NDArray[np.int8]:
    """Transaction type per row drawn from the category's type mix."""
    bucket = rng.integers(0, 1 << _LUT_BITS, cat.size, dtype=np.uint16)
    return _TYPE_LUT.ravel()[(cat.astype(np.int32) << _LUT_BITS) | bucket].astype(np.int8)


def _category_amounts(rng: np.random.Generator, cat: NDArray[np.int8]) -> NDArray[np.float64]:
    z = rng.standard_normal(cat.size)
    return _AMOUNT_MEDIAN[cat] * np.exp(_AMOUNT_SIGMA[cat] * z)


# --------------------------------------------------------------------------- world


@dataclass(frozen=True)
class World:
    """Customers, merchants and the hidden per-customer behaviour profiles."""

    customers: pa.Table
    merchants: pa.Table
    created_day: NDArray[np.int32]
    home_currency: NDArray[np.int8]
    activity: NDArray[np.float64]
    spend: NDArray[np.float64]
    night: NDArray[np.float64]
    devices: NDArray[np.uint64]
    second_device_share: NDArray[np.float64]
    ips: NDArray[np.uint32]
    second_ip_share: NDArray[np.float64]
    category_mix: NDArray[np.float64]  # (customers, categories) share of everyday spending
    preferred: NDArray[np.int32]  # (customers, categories, 2) favourite merchants
    merchant_category: NDArray[np.int8]
    merchant_cdf: NDArray[np.float64]
    category_pools: tuple[NDArray[np.int64], ...]
    category_pool_cdfs: tuple[NDArray[np.float64], ...]
    fraud_order: NDArray[np.int32]

    @property
    def n_customers(self) -> int:
        """Number of customers."""
        return self.customers.num_rows

    @property
    def n_merchants(self) -> int:
        """Number of merchants."""
        return self.merchants.num_rows

    def merchants_in(self, categories: Sequence[str]) -> NDArray[np.int64]:
        """Indices of merchants belonging to ``categories``."""
        codes = [_CAT[c] for c in categories]
        return np.flatnonzero(np.isin(self.merchant_category, codes))


def build_world(seed: int, customers: int, end_date: date) -> World:
    """Customers, merchants and behaviour profiles (depends only on seed, customers, end date)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    n_c, n_m = customers, n_merchants(customers)

    # merchants ----------------------------------------------------------------
    m_cat = rng.choice(len(CATEGORIES), size=n_m, p=_CATEGORY_SHARE).astype(np.int8)
    m_cat[: len(CATEGORIES)] = np.arange(len(CATEGORIES), dtype=np.int8)  # every category
    m_cat = m_cat[rng.permutation(n_m)]
    stems = [np.array(s, dtype=object) for s in _NAME_STEM]
    prefix = np.array(_NAME_PREFIX, dtype=object)[rng.integers(0, len(_NAME_PREFIX), n_m)]
    stem_pick = rng.random(n_m)
    m_name = [
        f"{p} {stems[c][int(u * len(stems[c]))]}"
        for p, c, u in zip(prefix, m_cat, stem_pick, strict=True)
    ]
    m_country = np.where(rng.random(n_m) < 0.93, "US", rng.choice(["CA", "GB", "DE", "FR"], n_m))
    popularity = 1.0 / (1.0 + rng.permutation(n_m)) ** 0.8
    merchant_cdf = _cdf(popularity)
    merchants = pa.table(
        [
            _prefixed_ids("M", np.arange(1, n_m + 1), 6),
            pa.array(m_name, pa.string()),
            pc.take(pa.array(CATEGORIES), pa.array(m_cat)),
            pa.array(m_country, pa.string()),
        ],
        schema=MERCHANTS_SCHEMA,
    )

    # customers ----------------------------------------------------------------
    first = np.array(_FIRST_NAMES, dtype=object)[rng.integers(0, len(_FIRST_NAMES), n_c)]
    last = np.array(_LAST_NAMES, dtype=object)[rng.integers(0, len(_LAST_NAMES), n_c)]
    first_a = pa.array(first, pa.string())
    last_a = pa.array(last, pa.string())
    domain = pa.array(
        np.array(_EMAIL_DOMAINS, dtype=object)[
            rng.choice(len(_EMAIL_DOMAINS), n_c, p=_EMAIL_DOMAIN_P)
        ],
        pa.string(),
    )
    email = pc.binary_join_element_wise(
        first_a,
        ".",
        last_a,
        pc.cast(pa.array(np.arange(1, n_c + 1)), pa.string()),
        "@",
        domain,
        "",
    )
    country = rng.choice(len(_COUNTRIES), n_c, p=_COUNTRY_P)
    city_tab = [c for cities in _CITIES for c in cities]
    city_off = np.cumsum([0] + [len(c) for c in _CITIES])[:-1]
    city_len = np.array([len(c) for c in _CITIES])
    city_idx = city_off[country] + (rng.random(n_c) * city_len[country]).astype(np.int64)
    cc = np.array(_COUNTRY_PHONE, dtype=object)[country]
    digits = [rng.integers(lo, hi, n_c) for lo, hi in ((201, 990), (200, 999), (0, 10_000))]
    phone = pc.binary_join_element_wise(
        pc.binary_join_element_wise("+", pa.array(cc, pa.string()), ""),
        pc.cast(pa.array(digits[0]), pa.string()),
        pc.cast(pa.array(digits[1]), pa.string()),
        pc.utf8_lpad(pc.cast(pa.array(digits[2]), pa.string()), 4, "0"),
        "-",
    )
    end_day = _epoch_day(end_date)
    created_day = (end_day - rng.integers(30, 5 * 365 + 1, n_c)).astype(np.int32)
    customers_t = pa.table(
        [
            _prefixed_ids("C", np.arange(1, n_c + 1), 7),
            pa.array([f.capitalize() for f in first], pa.string()),
            pa.array([x.capitalize() for x in last], pa.string()),
            email,
            phone,
            pa.array([city_tab[i][0] for i in city_idx], pa.string()),
            pa.array([city_tab[i][1] for i in city_idx], pa.string()),
            pa.array(np.array(_COUNTRIES, dtype=object)[country], pa.string()),
            pa.array(created_day, pa.date32()),
        ],
        schema=CUSTOMERS_SCHEMA,
    )

    # hidden behaviour profiles -------------------------------------------------
    activity = rng.lognormal(0.0, 1.0, n_c)
    spend = rng.lognormal(0.0, 0.3, n_c)
    owl = rng.random(n_c) < 0.08
    night = np.where(owl, rng.beta(5.0, 5.0, n_c), rng.beta(1.5, 18.0, n_c))
    devices = rng.integers(0, 1 << 48, size=(n_c, 2), dtype=np.uint64)
    second_device_share = np.where(rng.random(n_c) < 0.35, rng.uniform(0.1, 0.45, n_c), 0.0)
    ips = np.stack([_random_ips(rng, n_c, 0.03), _random_ips(rng, n_c, 0.1)], axis=1)
    second_ip_share = np.where(rng.random(n_c) < 0.4, rng.uniform(0.1, 0.4, n_c), 0.0)
    freq = _CATEGORY_FREQUENCY / _CATEGORY_FREQUENCY.sum()
    mix = rng.dirichlet(freq * _MIX_CONCENTRATION, size=n_c)
    mix /= mix.sum(axis=1, keepdims=True)
    pools = tuple(np.flatnonzero(m_cat == j) for j in range(len(CATEGORIES)))
    pool_cdfs = tuple(_cdf(popularity[pool]) for pool in pools)
    preferred = np.empty((n_c, len(CATEGORIES), 2), dtype=np.int32)
    for j, (pool, pcdf) in enumerate(zip(pools, pool_cdfs, strict=True)):
        pick = np.searchsorted(pcdf, rng.random((n_c, 2)), side="right")
        preferred[:, j, :] = pool[np.minimum(pick, pool.size - 1)]
    fraud_order = rng.permutation(n_c).astype(np.int32)
    return World(
        customers=customers_t,
        merchants=merchants,
        created_day=created_day,
        home_currency=np.array(_COUNTRY_CURRENCY, dtype=np.int8)[country],
        activity=activity,
        spend=spend,
        night=night,
        devices=devices,
        second_device_share=second_device_share,
        ips=ips,
        second_ip_share=second_ip_share,
        category_mix=mix,
        preferred=preferred,
        merchant_category=m_cat,
        merchant_cdf=merchant_cdf,
        category_pools=pools,
        category_pool_cdfs=pool_cdfs,
        fraud_order=fraud_order,
    )


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class _Window:
    start_s: int
    end_s: int
    days: int

    @property
    def span(self) -> int:
        return self.end_s - self.start_s

    def day_cdf(self, weekend_weight: float) -> NDArray[np.float64]:
        start_day = self.start_s // DAY_S
        weekday = (start_day + np.arange(self.days) + 3) % 7  # Monday = 0
        return _cdf(np.where(weekday >= 5, weekend_weight, 1.0))


@dataclass
class _Rows:
    """Clean transaction rows in generation order (timestamps in seconds)."""

    cust: NDArray[np.int32]
    merch: NDArray[np.int32]
    ts: NDArray[np.int64]
    amount: NDArray[np.float64]
    ttype: NDArray[np.int8]
    cur: NDArray[np.int8]
    dev: NDArray[np.uint64]
    ip: NDArray[np.uint32]
    scenario: NDArray[np.int8]  # -1 legitimate, else index into SCENARIOS

    @staticmethod
    def concat(parts: Sequence["_Rows"]) -> "_Rows":
        names = ("cust", "merch", "ts", "amount", "ttype", "cur", "dev", "ip", "scenario")
        return _Rows(*(np.concatenate([getattr(p, n) for p in parts]) for n in names))

    def take(self, idx: NDArray[np.int64]) -> "_Rows":
        names = ("cust", "merch", "ts", "amount", "ttype", "cur", "dev", "ip", "scenario")
        return _Rows(*(getattr(self, n)[idx] for n in names))


def _make_rows(
    cust: NDArray[Any],
    merch: NDArray[Any],
    ts: NDArray[Any],
    amount: NDArray[Any],
    ttype: NDArray[Any] | int,
    cur: NDArray[Any],
    dev: NDArray[Any],
    ip: NDArray[Any],
    scenario: int,
) -> _Rows:
    n = cust.size
    return _Rows(
        cust=cust.astype(np.int32),
        merch=merch.astype(np.int32),
        ts=ts.astype(np.int64),
        amount=amount.astype(np.float64),
        ttype=np.broadcast_to(np.asarray(ttype, dtype=np.int8), (n,)).copy(),
        cur=cur.astype(np.int8),
        dev=dev.astype(np.uint64),
        ip=ip.astype(np.uint32),
        scenario=np.full(n, scenario, dtype=np.int8),
    )


def _home_device(
    rng: np.random.Generator, world: World, cust: NDArray[np.int32], roam: float
) -> NDArray[np.uint64]:
    n = cust.size
    second = (rng.random(n) < world.second_device_share[cust]).astype(np.int64)
    dev = world.devices[cust, second]
    if roam > 0:
        roaming = np.flatnonzero(rng.random(n) < roam)
        dev[roaming] = _new_devices(rng, roaming.size)
    return dev


def _home_ip(
    rng: np.random.Generator, world: World, cust: NDArray[np.int32], roam: float
) -> NDArray[np.uint32]:
    n = cust.size
    second = (rng.random(n) < world.second_ip_share[cust]).astype(np.int64)
    ip = world.ips[cust, second]
    if roam > 0:
        roaming = np.flatnonzero(rng.random(n) < roam)
        ip[roaming] = _random_ips(rng, roaming.size, 0.25)
    return ip


def _pick(rng: np.random.Generator, pool: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    return pool[rng.integers(0, pool.size, n)]


def _fraud_start(
    rng: np.random.Generator, world: World, cust: NDArray[np.int32], win: _Window
) -> NDArray[np.int64]:
    """Start time of an incident: after 20 % of the window and after account creation."""
    hi = win.end_s - min(win.span // 4, 3 * DAY_S)
    lo = np.maximum(win.start_s + win.span // 5, world.created_day[cust].astype(np.int64) * DAY_S)
    lo = np.minimum(lo, hi - 1)
    return lo + (rng.random(cust.size) * (hi - lo)).astype(np.int64)


def _spread(
    rng: np.random.Generator, t0: NDArray[np.int64], k: NDArray[np.int64], dur: NDArray[np.float64]
) -> NDArray[np.int64]:
    grp = np.repeat(np.arange(k.size), k)
    return t0[grp] + (rng.random(grp.size) * dur[grp]).astype(np.int64)


def _to_night(rng: np.random.Generator, ts: NDArray[np.int64], share: float) -> NDArray[np.int64]:
    """Move ``share`` of timestamps to 00:00-05:59 on the same day."""
    night = rng.random(ts.size) < share
    moved = (ts // DAY_S) * DAY_S + rng.integers(0, 6 * 3600, ts.size)
    return np.where(night, moved, ts)


def _legit_rows(
    rng: np.random.Generator,
    world: World,
    counts: NDArray[np.int64],
    win: _Window,
    shift: bool,
) -> _Rows:
    """Everyday transactions: ``counts[c]`` rows for customer c."""
    n_cat = len(CATEGORIES)
    per_cat = rng.multinomial(counts, world.category_mix).ravel()  # (customer, category) counts
    cust = np.repeat(np.repeat(np.arange(world.n_customers, dtype=np.int32), n_cat), per_cat)
    cat = np.repeat(np.tile(np.arange(n_cat, dtype=np.int8), world.n_customers), per_cat)
    del per_cat
    n = cust.size
    second = (rng.random(n) < 0.3).astype(np.int64)
    merch = world.preferred[cust, cat, second]
    del second
    other = rng.random(n) >= 0.85  # somewhere new, by popularity within the category
    for j, (pool, pcdf) in enumerate(
        zip(world.category_pools, world.category_pool_cdfs, strict=True)
    ):
        idx = np.flatnonzero(other & (cat == j))
        pick = np.searchsorted(pcdf, rng.random(idx.size), side="right")
        merch[idx] = pool[np.minimum(pick, pool.size - 1)]
    del other
    amount = _category_amounts(rng, cat)
    amount *= world.spend[cust]
    ttype = _types(rng, cat)
    del cat
    atm = np.flatnonzero(ttype == _TYPE["atm_withdrawal"])
    amount[atm] = rng.choice(_ATM_AMOUNTS, size=atm.size, p=_ATM_P)
    if shift:
        amount *= 3.0
        high = np.flatnonzero(rng.random(n) < 0.12)
        amount[high] = _loguniform(rng, 1000.0, 8000.0, high.size)
    amount = _money(amount)

    # timestamps: weekday/weekend mix, per-customer day/night habit, after account creation
    day = _draw(rng, _lut(win.day_cdf(3.5 if shift else 1.2)), n).astype(np.int64)
    first_day = np.maximum(world.created_day.astype(np.int64) - win.start_s // DAY_S, 0)[cust]
    late = np.flatnonzero(day < first_day)
    day[late] = first_day[late] + day[late] % (win.days - first_day[late])
    del first_day, late
    night = rng.random(n) < world.night[cust]
    if shift:
        night |= rng.random(n) < 0.45
    bucket = rng.integers(0, 1 << _LUT_BITS, n, dtype=np.uint16)
    hour = _HOUR_LUT[(night.astype(np.int32) << _LUT_BITS) | bucket]
    del bucket, night
    ts = win.start_s + day * DAY_S + hour.astype(np.int64) * 3600 + rng.integers(0, 3600, n)
    del day, hour

    cur = world.home_currency[cust]
    foreign = np.flatnonzero(rng.random(n) < 0.02)
    cur[foreign] = rng.integers(0, len(CURRENCIES), foreign.size)
    dev = _home_device(rng, world, cust, 0.03)
    ip = _home_ip(rng, world, cust, 0.06)
    return _make_rows(cust, merch, ts, amount, ttype, cur, dev, ip, -1)


def _card_testing(
    rng: np.random.Generator, world: World, victims: NDArray[np.int32], win: _Window
) -> _Rows:
    """Bursts of 8-30 tiny online probes at many merchants, new device/IP, maybe a cash-out."""
    m = victims.size
    k = rng.integers(8, 31, m)
    t0 = _fraud_start(rng, world, victims, win)
    dev_v, ip_v = _new_devices(rng, m), _random_ips(rng, m, 0.6)
    grp = np.repeat(np.arange(m), k)
    gaps = rng.exponential(25.0, grp.size) + 2.0
    csum = np.cumsum(gaps)
    first = np.cumsum(k) - k
    within = csum - np.repeat(csum[first] - gaps[first], k)
    ts = t0[grp] + within.astype(np.int64)
    probes = _make_rows(
        victims[grp],
        _pick(rng, world.merchants_in(_ONLINE_CATS), grp.size),
        ts,
        np.round(rng.uniform(0.5, 5.0, grp.size), 2),
        _TYPE["online"],
        world.home_currency[victims[grp]],
        dev_v[grp],
        ip_v[grp],
        0,
    )
    big = np.flatnonzero(rng.random(m) < 0.5)
    last = np.cumsum(k) - 1
    cashout = _make_rows(
        victims[big],
        _pick(rng, world.merchants_in(("electronics", "online_retail")), big.size),
        ts[last[big]] + rng.integers(300, 7200, big.size),
        _money(_loguniform(rng, 150.0, 1500.0, big.size)),
        _TYPE["online"],
        world.home_currency[victims[big]],
        dev_v[big],
        ip_v[big],
        0,
    )
    return _Rows.concat([probes, cashout])


def _account_takeover(
    rng: np.random.Generator, world: World, victims: NDArray[np.int32], win: _Window
) -> _Rows:
    """2-6 large purchases from a new device and IP within one or two days, often at night."""
    m = victims.size
    k = rng.integers(2, 7, m)
    t0 = _fraud_start(rng, world, victims, win)
    dur = min(2 * DAY_S, win.span // 5) * rng.uniform(0.1, 1.0, m)
    ts = _to_night(rng, _spread(rng, t0, k, dur), 0.6)
    grp = np.repeat(np.arange(m), k)
    merch = _pick(rng, world.merchants_in(_ATO_CATS), grp.size)
    is_elec = world.merchant_category[merch] == _CAT["electronics"]
    ttype = np.where(is_elec & (rng.random(grp.size) < 0.4), _TYPE["purchase"], _TYPE["online"])
    return _make_rows(
        victims[grp],
        merch,
        ts,
        _money(rng.uniform(800.0, 5000.0, grp.size)),
        ttype,
        world.home_currency[victims[grp]],
        _new_devices(rng, m)[grp],
        _random_ips(rng, m, 0.6)[grp],
        1,
    )


def _compromised_merchant(
    rng: np.random.Generator, world: World, victims: NDArray[np.int32], win: _Window
) -> tuple[_Rows, _Rows, int]:
    """Victims shop at a breached merchant, then get unauthorised / cloned-card charges.

    Returns (legitimate visits to the merchant, fraud rows, merchant index).
    """
    pool = world.merchants_in(_SKIMMED_CATS)
    weights = np.diff(np.concatenate([[0.0], world.merchant_cdf]))[pool]
    merchant = int(pool[rng.choice(pool.size, p=weights / weights.sum())])
    m = victims.size
    created = world.created_day[victims].astype(np.int64) * DAY_S
    lo = np.maximum(win.start_s, created)
    hi = np.maximum(lo + 3600, win.start_s + win.span // 2)
    visit = lo + (rng.random(m) * (hi - lo)).astype(np.int64)
    cat = np.full(m, world.merchant_category[merchant], dtype=np.int8)
    visits = _make_rows(
        victims,
        np.full(m, merchant),
        visit,
        _money(_category_amounts(rng, cat) * world.spend[victims]),
        _types(rng, cat),
        world.home_currency[victims],
        world.devices[victims, 0],
        world.ips[victims, 0],
        -1,
    )
    # fraud starts at least a while after the visit
    t0 = np.maximum(_fraud_start(rng, world, victims, win), visit + min(DAY_S, win.span // 10))
    t0 = np.minimum(t0, win.end_s - min(win.span // 4, 3 * DAY_S))
    k = rng.integers(3, 9, m)
    dur = min(3 * DAY_S, win.span // 5) * rng.uniform(0.2, 1.0, m)
    ts = _spread(rng, t0, k, dur)
    grp = np.repeat(np.arange(m), k)
    n = grp.size
    at_merchant = rng.random(n) < 0.3
    ring_dev, ring_ip = _new_devices(rng, 3), _random_ips(rng, 3, 0.5)
    ring = rng.integers(0, 3, n)
    fraud = _make_rows(
        victims[grp],
        np.where(at_merchant, merchant, _pick(rng, world.merchants_in(_CLONE_CATS), n)),
        ts,
        _money(np.where(at_merchant, rng.uniform(250.0, 1500.0, n), rng.uniform(500.0, 3000.0, n))),
        np.where(at_merchant, _TYPE["online"], _TYPE["purchase"]),
        world.home_currency[victims[grp]],
        np.where(at_merchant, world.devices[victims[grp], 0], ring_dev[ring]),
        np.where(at_merchant, world.ips[victims[grp], 0], ring_ip[ring]),
        2,
    )
    return visits, fraud, merchant


def _spree_lookalikes(
    rng: np.random.Generator, world: World, custs: NDArray[np.int32], win: _Window
) -> _Rows:
    """Legitimate big-ticket sprees (sometimes new phone or hotel wifi, sometimes at night)."""
    m = custs.size
    k = rng.integers(2, 6, m)
    t0 = _fraud_start(rng, world, custs, win)
    dur = min(3 * DAY_S, win.span // 5) * rng.uniform(0.1, 1.0, m)
    ts = _to_night(rng, _spread(rng, t0, k, dur), 0.35)
    grp = np.repeat(np.arange(m), k)
    new_dev = rng.random(m) < 0.3
    new_ip = rng.random(m) < 0.3
    merch = _pick(rng, world.merchants_in(_ATO_CATS), grp.size)
    is_elec = world.merchant_category[merch] == _CAT["electronics"]
    return _make_rows(
        custs[grp],
        merch,
        ts,
        _money(_loguniform(rng, 400.0, 3000.0, grp.size)),
        np.where(is_elec & (rng.random(grp.size) < 0.5), _TYPE["purchase"], _TYPE["online"]),
        world.home_currency[custs[grp]],
        np.where(new_dev, _new_devices(rng, m), world.devices[custs, 0])[grp],
        np.where(new_ip, _random_ips(rng, m, 0.3), world.ips[custs, 0])[grp],
        -1,
    )


def _micro_lookalikes(
    rng: np.random.Generator, world: World, custs: NDArray[np.int32], win: _Window
) -> _Rows:
    """Legitimate bursts of small in-app / digital purchases at one to three merchants."""
    m = custs.size
    k = rng.integers(5, 21, m)
    t0 = _fraud_start(rng, world, custs, win)
    grp = np.repeat(np.arange(m), k)
    gaps = rng.exponential(90.0, grp.size) + 5.0
    csum = np.cumsum(gaps)
    first = np.cumsum(k) - k
    ts = t0[grp] + (csum - np.repeat(csum[first] - gaps[first], k)).astype(np.int64)
    shops = _pick(rng, world.merchants_in(("entertainment", "online_retail")), 3 * m).reshape(m, 3)
    n_shops = rng.integers(1, 4, m)
    merch = shops[grp, (rng.random(grp.size) * n_shops[grp]).astype(np.int64)]
    price = np.array([0.99, 1.99, 2.99, 4.99])[rng.integers(0, 4, grp.size)]
    amount = np.where(
        rng.random(grp.size) < 0.7, price, np.round(rng.uniform(0.5, 5.0, grp.size), 2)
    )
    new_dev = rng.random(m) < 0.1
    new_ip = rng.random(m) < 0.15
    return _make_rows(
        custs[grp],
        merch,
        ts,
        amount,
        _TYPE["online"],
        world.home_currency[custs[grp]],
        np.where(new_dev, _new_devices(rng, m), world.devices[custs, 0])[grp],
        np.where(new_ip, _random_ips(rng, m, 0.3), world.ips[custs, 0])[grp],
        -1,
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
                _transaction_id_strings(self.tid[s]),
                pc.take(self.customer_ids, pa.array(cust, mask=cust < 0)),
                pc.take(self.merchant_ids, pa.array(merch, mask=merch < 0)),
                pa.array(self.ts_us[s], type=pa.timestamp("us")),
                pa.array(self.amount[s]),
                pc.take(_CURRENCY_TABLE, pa.array(self.cur[s])),
                pc.take(_TYPE_TABLE, pa.array(self.ttype[s])),
                pc.take(_CATEGORY_TABLE, pa.array(self.cat[s])),
                _device_strings(self.dev[s]),
                _ip_strings(self.ip[s]),
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
    clean: _Rows,
    world: World,
    win: _Window,
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
    is_dup = defect <= _DEFECT["conflicting_duplicate"]
    new = ~is_dup

    # fresh rows: same customer habits, new amount and a slightly later (or earlier) time
    d_amount[new] = _money(d_amount[new] * rng.uniform(0.6, 1.4, int(new.sum())))
    delta = rng.integers(1, 601, d) * US
    moved = d_ts + delta
    d_ts = np.where(new, np.where(moved < win.end_s * US, moved, d_ts - delta), d_ts)

    sel = np.flatnonzero(defect == _DEFECT["conflicting_duplicate"])
    factor = np.where(
        rng.random(sel.size) < 0.5,
        rng.uniform(1.15, 2.5, sel.size),
        rng.uniform(0.3, 0.85, sel.size),
    )
    changed = np.maximum(np.round(d_amount[sel] * factor, 2), 0.01)
    changed = np.where(changed == d_amount[sel], changed + 1.0, changed)
    d_amount[sel] = changed
    d_cust[defect == _DEFECT["missing_customer_id"]] = -1
    d_merch[defect == _DEFECT["missing_merchant_id"]] = -1
    sel = np.flatnonzero(defect == _DEFECT["non_positive_amount"])
    d_amount[sel] = np.where(rng.random(sel.size) < 0.3, 0.0, -d_amount[sel])
    sel = np.flatnonzero(defect == _DEFECT["unknown_currency"])
    d_cur[sel] = len(CURRENCIES) + rng.integers(0, len(BAD_CURRENCIES), sel.size)
    future = defect == _DEFECT["future_timestamp"]
    d_ts[future] = (win.end_s + rng.integers(DAY_S, 400 * DAY_S + 1, int(future.sum()))) * US
    orphan = np.flatnonzero(defect == _DEFECT["orphan_customer_id"])
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
                _prefixed_ids("C", orphan_numbers, 7),
            ]
        ),
        merchant_ids=world.merchants.column("merchant_id").combine_chunks(),
    )
    del ts_us
    defect_s = defect[order]
    fresh = np.ones(total, dtype=bool)
    fresh[final_dirty[defect_s <= _DEFECT["missing_transaction_id"]]] = False
    cols.tid[fresh] = id_start + np.arange(int(fresh.sum()), dtype=np.int64)
    dup_s = np.flatnonzero(defect_s <= _DEFECT["conflicting_duplicate"])
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
    end_s = _epoch_day(config.end_date) * DAY_S
    win = _Window(end_s - config.days * DAY_S, end_s, config.days)
    n_c, total = world.n_customers, config.transactions

    # fraud victims: next slice of the world's fixed permutation (disjoint across batches)
    plan = fraud_plan(n_c, config.fraud_rate)
    n_fraud = sum(plan)
    victims = world.fraud_order[(cursor + np.arange(n_fraud)) % n_c]
    v_ct, v_ato, v_cm = np.split(victims, [plan[0], plan[0] + plan[1]])
    parts = [_card_testing(rng, world, v_ct, win), _account_takeover(rng, world, v_ato, win)]
    compromised: int | None = None
    if v_cm.size:
        visits, cm_rows, compromised = _compromised_merchant(rng, world, v_cm, win)
        parts += [visits, cm_rows]

    # legitimate look-alikes that overlap with fraud patterns
    others = np.setdiff1d(np.arange(n_c, dtype=np.int32), victims)
    n_spree = min(round(SPREE_LOOKALIKE_SHARE * n_c), total // 50, others.size // 4)
    n_micro = min(round(MICRO_LOOKALIKE_SHARE * n_c), total // 200, others.size // 4)
    look = rng.choice(others, size=n_spree + n_micro, replace=False)
    parts += [
        _spree_lookalikes(rng, world, look[:n_spree], win),
        _micro_lookalikes(rng, world, look[n_spree:], win),
    ]
    used = sum(p.cust.size for p in parts)
    step("fraud scenarios")

    weights = world.activity / world.activity.sum()
    counts = rng.multinomial(total - used, weights)
    parts.insert(0, _legit_rows(rng, world, counts, win, config.shift))
    rows = _Rows.concat(parts)
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
        "window": {"start": _iso(win.start_s), "end": _iso(win.end_s)},
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
