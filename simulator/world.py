"""The simulated world: customers, merchants, their devices and addresses (World), and the
small array helpers the rows are drawn with."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from simulator.config import (
    AMOUNT_MEDIAN,
    AMOUNT_SIGMA,
    CAT,
    CATEGORIES,
    CATEGORY_FREQUENCY,
    CATEGORY_SHARE,
    CITIES,
    COUNTRIES,
    COUNTRY_CURRENCY,
    COUNTRY_P,
    COUNTRY_PHONE,
    CUSTOMERS_SCHEMA,
    EMAIL_DOMAIN_P,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    HEX_CHARS,
    HOSTING_OCTETS,
    LAST_NAMES,
    LUT_BITS,
    MERCHANTS_SCHEMA,
    MIX_CONCENTRATION,
    NAME_PREFIX,
    NAME_STEM,
    RESIDENTIAL_OCTETS,
    TYPE_LUT,
    cdf,
    n_merchants,
)

# --------------------------------------------------------------------------- helpers


def epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None).isoformat()


def prefixed_ids(prefix: str, numbers: NDArray[np.int64], width: int) -> pa.Array:
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


def transaction_id_strings(numbers: NDArray[np.int64]) -> pa.Array:
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


def device_strings(codes: NDArray[np.uint64]) -> pa.Array:
    """``dev-`` plus 12 hex digits from the low 48 bits of each code."""
    raw = np.ascontiguousarray(codes, dtype=">u8").view(np.uint8).reshape(-1, 8)[:, 2:]
    chars = np.empty((codes.size, 16), dtype=np.uint8)
    chars[:, :4] = np.frombuffer(b"dev-", dtype=np.uint8)
    chars[:, 4::2] = HEX_CHARS[raw >> 4]
    chars[:, 5::2] = HEX_CHARS[raw & 15]
    return _fixed_width_strings(chars)


def ip_strings(codes: NDArray[np.uint32]) -> pa.Array:
    """Dotted IPv4 strings from uint32 codes (formats each distinct address once)."""
    encoded = pc.dictionary_encode(pa.array(codes))
    distinct = encoded.dictionary.to_numpy()
    octets = [
        pc.cast(pa.array(((distinct >> s) & 255).astype(np.uint8)), pa.string())
        for s in (24, 16, 8, 0)
    ]
    return pc.take(pc.binary_join_element_wise(*octets, "."), encoded.indices)


def loguniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> NDArray[np.float64]:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def money(x: NDArray[np.float64], floor: float = 0.5) -> NDArray[np.float64]:
    return np.maximum(np.round(x, 2), floor)


def new_devices(rng: np.random.Generator, n: int) -> NDArray[np.uint64]:
    return rng.integers(0, 1 << 48, size=n, dtype=np.uint64)


def random_ips(rng: np.random.Generator, n: int, hosting_share: float) -> NDArray[np.uint32]:
    hosting = rng.random(n) < hosting_share
    first = np.where(
        hosting,
        HOSTING_OCTETS[rng.integers(0, HOSTING_OCTETS.size, n)],
        RESIDENTIAL_OCTETS[rng.integers(0, RESIDENTIAL_OCTETS.size, n)],
    ).astype(np.uint32)
    mid = rng.integers(0, 1 << 16, n, dtype=np.uint32)
    last = rng.integers(1, 255, n, dtype=np.uint32)
    return ((first << 24) | (mid << 8) | last).astype(np.uint32)


def types(rng: np.random.Generator, cat: NDArray[np.int8]) -> NDArray[np.int8]:
    """Transaction type per row drawn from the category's type mix."""
    bucket = rng.integers(0, 1 << LUT_BITS, cat.size, dtype=np.uint16)
    return TYPE_LUT.ravel()[(cat.astype(np.int32) << LUT_BITS) | bucket].astype(np.int8)


def category_amounts(rng: np.random.Generator, cat: NDArray[np.int8]) -> NDArray[np.float64]:
    z = rng.standard_normal(cat.size)
    return AMOUNT_MEDIAN[cat] * np.exp(AMOUNT_SIGMA[cat] * z)


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
        codes = [CAT[c] for c in categories]
        return np.flatnonzero(np.isin(self.merchant_category, codes))


def build_world(seed: int, customers: int, end_date: date) -> World:
    """Customers, merchants and behaviour profiles (depends only on seed, customers, end date)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    n_c, n_m = customers, n_merchants(customers)

    # merchants ----------------------------------------------------------------
    m_cat = rng.choice(len(CATEGORIES), size=n_m, p=CATEGORY_SHARE).astype(np.int8)
    m_cat[: len(CATEGORIES)] = np.arange(len(CATEGORIES), dtype=np.int8)  # every category
    m_cat = m_cat[rng.permutation(n_m)]
    stems = [np.array(s, dtype=object) for s in NAME_STEM]
    prefix = np.array(NAME_PREFIX, dtype=object)[rng.integers(0, len(NAME_PREFIX), n_m)]
    stem_pick = rng.random(n_m)
    m_name = [
        f"{p} {stems[c][int(u * len(stems[c]))]}"
        for p, c, u in zip(prefix, m_cat, stem_pick, strict=True)
    ]
    m_country = np.where(rng.random(n_m) < 0.93, "US", rng.choice(["CA", "GB", "DE", "FR"], n_m))
    popularity = 1.0 / (1.0 + rng.permutation(n_m)) ** 0.8
    merchant_cdf = cdf(popularity)
    merchants = pa.table(
        [
            prefixed_ids("M", np.arange(1, n_m + 1), 6),
            pa.array(m_name, pa.string()),
            pc.take(pa.array(CATEGORIES), pa.array(m_cat)),
            pa.array(m_country, pa.string()),
        ],
        schema=MERCHANTS_SCHEMA,
    )

    # customers ----------------------------------------------------------------
    first = np.array(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n_c)]
    last = np.array(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n_c)]
    first_a = pa.array(first, pa.string())
    last_a = pa.array(last, pa.string())
    domain = pa.array(
        np.array(EMAIL_DOMAINS, dtype=object)[
            rng.choice(len(EMAIL_DOMAINS), n_c, p=EMAIL_DOMAIN_P)
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
    country = rng.choice(len(COUNTRIES), n_c, p=COUNTRY_P)
    city_tab = [c for cities in CITIES for c in cities]
    city_off = np.cumsum([0] + [len(c) for c in CITIES])[:-1]
    city_len = np.array([len(c) for c in CITIES])
    city_idx = city_off[country] + (rng.random(n_c) * city_len[country]).astype(np.int64)
    cc = np.array(COUNTRY_PHONE, dtype=object)[country]
    digits = [rng.integers(lo, hi, n_c) for lo, hi in ((201, 990), (200, 999), (0, 10_000))]
    phone = pc.binary_join_element_wise(
        pc.binary_join_element_wise("+", pa.array(cc, pa.string()), ""),
        pc.cast(pa.array(digits[0]), pa.string()),
        pc.cast(pa.array(digits[1]), pa.string()),
        pc.utf8_lpad(pc.cast(pa.array(digits[2]), pa.string()), 4, "0"),
        "-",
    )
    end_day = epoch_day(end_date)
    created_day = (end_day - rng.integers(30, 5 * 365 + 1, n_c)).astype(np.int32)
    customers_t = pa.table(
        [
            prefixed_ids("C", np.arange(1, n_c + 1), 7),
            pa.array([f.capitalize() for f in first], pa.string()),
            pa.array([x.capitalize() for x in last], pa.string()),
            email,
            phone,
            pa.array([city_tab[i][0] for i in city_idx], pa.string()),
            pa.array([city_tab[i][1] for i in city_idx], pa.string()),
            pa.array(np.array(COUNTRIES, dtype=object)[country], pa.string()),
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
    ips = np.stack([random_ips(rng, n_c, 0.03), random_ips(rng, n_c, 0.1)], axis=1)
    second_ip_share = np.where(rng.random(n_c) < 0.4, rng.uniform(0.1, 0.4, n_c), 0.0)
    freq = CATEGORY_FREQUENCY / CATEGORY_FREQUENCY.sum()
    mix = rng.dirichlet(freq * MIX_CONCENTRATION, size=n_c)
    mix /= mix.sum(axis=1, keepdims=True)
    pools = tuple(np.flatnonzero(m_cat == j) for j in range(len(CATEGORIES)))
    pool_cdfs = tuple(cdf(popularity[pool]) for pool in pools)
    preferred = np.empty((n_c, len(CATEGORIES), 2), dtype=np.int32)
    for j, (pool, pcdf) in enumerate(zip(pools, pool_cdfs, strict=True)):
        pick = np.searchsorted(pcdf, rng.random((n_c, 2)), side="right")
        preferred[:, j, :] = pool[np.minimum(pick, pool.size - 1)]
    fraud_order = rng.permutation(n_c).astype(np.int32)
    return World(
        customers=customers_t,
        merchants=merchants,
        created_day=created_day,
        home_currency=np.array(COUNTRY_CURRENCY, dtype=np.int8)[country],
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
