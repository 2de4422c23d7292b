"""The generator's settings and fixed tables: identity, sizes, categories, types, currencies,
scenarios, defects, the output schemas, GeneratorConfig and the size plan."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

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

CATEGORY_TABLE = pa.array(CATEGORIES, pa.string())
TYPE_TABLE = pa.array(TRANSACTION_TYPES, pa.string())
CURRENCY_TABLE = pa.array(CURRENCIES + BAD_CURRENCIES, pa.string())
CAT = {name: i for i, name in enumerate(CATEGORIES)}
TYPE = {name: i for i, name in enumerate(TRANSACTION_TYPES)}
_CUR = {name: i for i, name in enumerate(CURRENCIES)}
DEFECT = {name: i for i, name in enumerate(DEFECTS)}

# Merchant mix, amount medians / log-sigmas and transaction-type mix per category.
CATEGORY_SHARE = np.array([0.18, 0.20, 0.10, 0.14, 0.05, 0.04, 0.08, 0.06, 0.09, 0.06])
AMOUNT_MEDIAN = np.array([40.0, 30.0, 45.0, 55.0, 300.0, 480.0, 45.0, 25.0, 70.0, 110.0])
AMOUNT_SIGMA = np.array([0.55, 0.6, 0.4, 0.9, 0.7, 0.55, 0.8, 0.7, 0.7, 0.5])
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
ATM_AMOUNTS = np.array([20.0, 40.0, 60.0, 80.0, 100.0, 140.0, 200.0, 300.0])
ATM_P = np.array([0.12, 0.2, 0.18, 0.1, 0.2, 0.05, 0.1, 0.05])


def cdf(weights: Sequence[float] | NDArray[Any]) -> NDArray[np.float64]:
    """Cumulative distribution with an exact 1.0 at the end."""
    c = np.cumsum(np.asarray(weights, dtype=np.float64))
    c /= c[-1]
    c[-1] = 1.0
    return c


LUT_BITS = 16


def lut(cdf: NDArray[np.float64]) -> NDArray[np.int16]:
    """Inverse-CDF lookup table over 2**16 equal-probability buckets (fast categorical draws)."""
    mid = (np.arange(1 << LUT_BITS) + 0.5) / (1 << LUT_BITS)
    return np.searchsorted(cdf, mid, side="right").astype(np.int16)


def draw(rng: np.random.Generator, lut: NDArray[np.int16], n: int) -> NDArray[np.int16]:
    """``n`` draws from the distribution behind ``lut``."""
    return lut[rng.integers(0, 1 << LUT_BITS, n, dtype=np.uint16)]


# Hour-of-day profiles for "day people" and "night people".
_DAY_HOURS = cdf(
    [0.6, 0.35, 0.2, 0.15, 0.15, 0.3, 0.8, 1.8, 3.0, 3.6, 4.0, 4.6,
     5.6, 5.4, 4.6, 4.4, 4.8, 5.6, 6.2, 5.8, 4.6, 3.4, 2.2, 1.2]
)  # fmt: skip
_NIGHT_HOURS = cdf(
    [6.0, 5.5, 5.0, 4.5, 3.5, 2.0, 1.0, 0.6, 0.5, 0.5, 0.5, 0.6,
     0.8, 0.8, 0.8, 0.8, 1.0, 1.2, 1.6, 2.0, 2.8, 3.8, 4.8, 5.6]
)  # fmt: skip
HOUR_LUT = np.concatenate([lut(_DAY_HOURS), lut(_NIGHT_HOURS)])  # day table, night table
TYPE_LUT = np.stack([lut(cdf(row)) for row in _TYPE_MIX])  # (category, bucket)
# Share of everyday transactions per category; each customer's own mix is a Dirichlet draw
# around it (travel/electronics stay rare for most, frequent for a few heavy spenders).
CATEGORY_FREQUENCY = np.array([0.22, 0.22, 0.11, 0.13, 0.025, 0.02, 0.07, 0.07, 0.075, 0.05])
MIX_CONCENTRATION = 20.0

FIRST_NAMES = (
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
LAST_NAMES = (
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
EMAIL_DOMAINS = ("example.com", "mail.test", "inbox.example", "post.test", "example.org")
EMAIL_DOMAIN_P = (0.34, 0.24, 0.18, 0.14, 0.10)

COUNTRIES = ("US", "CA", "GB", "DE", "FR")
COUNTRY_P = (0.90, 0.04, 0.03, 0.015, 0.015)
COUNTRY_CURRENCY = (_CUR["USD"], _CUR["CAD"], _CUR["GBP"], _CUR["EUR"], _CUR["EUR"])
COUNTRY_PHONE = ("1", "1", "44", "49", "33")
CITIES: tuple[tuple[tuple[str, str], ...], ...] = (
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

NAME_PREFIX = (
    "Blue", "Golden", "Sunset", "Maple", "River", "Summit", "Urban", "Lakeside", "Pioneer",
    "Harbor", "Cedar", "Silver", "Northside", "Evergreen", "Liberty", "Redwood", "Prairie",
    "Coastal", "Metro", "Highland",
)  # fmt: skip
NAME_STEM: tuple[tuple[str, ...], ...] = (
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

RESIDENTIAL_OCTETS = np.array(
    [24, 47, 50, 67, 68, 69, 71, 73, 75, 76, 96, 97, 98, 99, 107, 108, 174, 184], np.uint32
)
HOSTING_OCTETS = np.array([45, 104, 139, 142, 159, 167, 178, 185, 188, 193, 198, 209], np.uint32)
HEX_CHARS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

ONLINE_CATS = ("online_retail", "entertainment", "clothing", "electronics", "utilities")
ATO_CATS = ("electronics", "travel", "online_retail")
CLONE_CATS = ("electronics", "clothing", "grocery", "gas_station")
SKIMMED_CATS = ("restaurant", "gas_station", "grocery", "clothing", "online_retail")

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
