"""Transaction rows: the legitimate behaviour, the fraud scenarios (card testing, account
takeover, compromised merchants) and their legitimate look-alikes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from simulator.config import (
    ATM_AMOUNTS,
    ATM_P,
    ATO_CATS,
    CAT,
    CATEGORIES,
    CLONE_CATS,
    CURRENCIES,
    DAY_S,
    HOUR_LUT,
    LUT_BITS,
    ONLINE_CATS,
    SKIMMED_CATS,
    TYPE,
    cdf,
    draw,
    lut,
)
from simulator.world import (
    World,
    category_amounts,
    loguniform,
    money,
    new_devices,
    random_ips,
    types,
)

# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Window:
    start_s: int
    end_s: int
    days: int

    @property
    def span(self) -> int:
        return self.end_s - self.start_s

    def day_cdf(self, weekend_weight: float) -> NDArray[np.float64]:
        start_day = self.start_s // DAY_S
        weekday = (start_day + np.arange(self.days) + 3) % 7  # Monday = 0
        return cdf(np.where(weekday >= 5, weekend_weight, 1.0))


@dataclass
class Rows:
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
    def concat(parts: Sequence[Rows]) -> Rows:
        names = ("cust", "merch", "ts", "amount", "ttype", "cur", "dev", "ip", "scenario")
        return Rows(*(np.concatenate([getattr(p, n) for p in parts]) for n in names))

    def take(self, idx: NDArray[np.int64]) -> Rows:
        names = ("cust", "merch", "ts", "amount", "ttype", "cur", "dev", "ip", "scenario")
        return Rows(*(getattr(self, n)[idx] for n in names))


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
) -> Rows:
    n = cust.size
    return Rows(
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
        dev[roaming] = new_devices(rng, roaming.size)
    return dev


def _home_ip(
    rng: np.random.Generator, world: World, cust: NDArray[np.int32], roam: float
) -> NDArray[np.uint32]:
    n = cust.size
    second = (rng.random(n) < world.second_ip_share[cust]).astype(np.int64)
    ip = world.ips[cust, second]
    if roam > 0:
        roaming = np.flatnonzero(rng.random(n) < roam)
        ip[roaming] = random_ips(rng, roaming.size, 0.25)
    return ip


def _pick(rng: np.random.Generator, pool: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    return pool[rng.integers(0, pool.size, n)]


def _fraud_start(
    rng: np.random.Generator, world: World, cust: NDArray[np.int32], win: Window
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


def legit_rows(
    rng: np.random.Generator,
    world: World,
    counts: NDArray[np.int64],
    win: Window,
    shift: bool,
) -> Rows:
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
    amount = category_amounts(rng, cat)
    amount *= world.spend[cust]
    ttype = types(rng, cat)
    del cat
    atm = np.flatnonzero(ttype == TYPE["atm_withdrawal"])
    amount[atm] = rng.choice(ATM_AMOUNTS, size=atm.size, p=ATM_P)
    if shift:
        amount *= 3.0
        high = np.flatnonzero(rng.random(n) < 0.12)
        amount[high] = loguniform(rng, 1000.0, 8000.0, high.size)
    amount = money(amount)

    # timestamps: weekday/weekend mix, per-customer day/night habit, after account creation
    day = draw(rng, lut(win.day_cdf(3.5 if shift else 1.2)), n).astype(np.int64)
    first_day = np.maximum(world.created_day.astype(np.int64) - win.start_s // DAY_S, 0)[cust]
    late = np.flatnonzero(day < first_day)
    day[late] = first_day[late] + day[late] % (win.days - first_day[late])
    del first_day, late
    night = rng.random(n) < world.night[cust]
    if shift:
        night |= rng.random(n) < 0.45
    bucket = rng.integers(0, 1 << LUT_BITS, n, dtype=np.uint16)
    hour = HOUR_LUT[(night.astype(np.int32) << LUT_BITS) | bucket]
    del bucket, night
    ts = win.start_s + day * DAY_S + hour.astype(np.int64) * 3600 + rng.integers(0, 3600, n)
    del day, hour

    cur = world.home_currency[cust]
    foreign = np.flatnonzero(rng.random(n) < 0.02)
    cur[foreign] = rng.integers(0, len(CURRENCIES), foreign.size)
    dev = _home_device(rng, world, cust, 0.03)
    ip = _home_ip(rng, world, cust, 0.06)
    return _make_rows(cust, merch, ts, amount, ttype, cur, dev, ip, -1)


def card_testing(
    rng: np.random.Generator, world: World, victims: NDArray[np.int32], win: Window
) -> Rows:
    """Bursts of 8-30 tiny online probes at many merchants, new device/IP, maybe a cash-out."""
    m = victims.size
    k = rng.integers(8, 31, m)
    t0 = _fraud_start(rng, world, victims, win)
    dev_v, ip_v = new_devices(rng, m), random_ips(rng, m, 0.6)
    grp = np.repeat(np.arange(m), k)
    gaps = rng.exponential(25.0, grp.size) + 2.0
    csum = np.cumsum(gaps)
    first = np.cumsum(k) - k
    within = csum - np.repeat(csum[first] - gaps[first], k)
    ts = t0[grp] + within.astype(np.int64)
    probes = _make_rows(
        victims[grp],
        _pick(rng, world.merchants_in(ONLINE_CATS), grp.size),
        ts,
        np.round(rng.uniform(0.5, 5.0, grp.size), 2),
        TYPE["online"],
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
        money(loguniform(rng, 150.0, 1500.0, big.size)),
        TYPE["online"],
        world.home_currency[victims[big]],
        dev_v[big],
        ip_v[big],
        0,
    )
    return Rows.concat([probes, cashout])


def account_takeover(
    rng: np.random.Generator, world: World, victims: NDArray[np.int32], win: Window
) -> Rows:
    """2-6 large purchases from a new device and IP within one or two days, often at night."""
    m = victims.size
    k = rng.integers(2, 7, m)
    t0 = _fraud_start(rng, world, victims, win)
    dur = min(2 * DAY_S, win.span // 5) * rng.uniform(0.1, 1.0, m)
    ts = _to_night(rng, _spread(rng, t0, k, dur), 0.6)
    grp = np.repeat(np.arange(m), k)
    merch = _pick(rng, world.merchants_in(ATO_CATS), grp.size)
    is_elec = world.merchant_category[merch] == CAT["electronics"]
    ttype = np.where(is_elec & (rng.random(grp.size) < 0.4), TYPE["purchase"], TYPE["online"])
    return _make_rows(
        victims[grp],
        merch,
        ts,
        money(rng.uniform(800.0, 5000.0, grp.size)),
        ttype,
        world.home_currency[victims[grp]],
        new_devices(rng, m)[grp],
        random_ips(rng, m, 0.6)[grp],
        1,
    )


def compromised_merchant(
    rng: np.random.Generator, world: World, victims: NDArray[np.int32], win: Window
) -> tuple[Rows, Rows, int]:
    """Victims shop at a breached merchant, then get unauthorised / cloned-card charges.

    Returns (legitimate visits to the merchant, fraud rows, merchant index).
    """
    pool = world.merchants_in(SKIMMED_CATS)
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
        money(category_amounts(rng, cat) * world.spend[victims]),
        types(rng, cat),
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
    ring_dev, ring_ip = new_devices(rng, 3), random_ips(rng, 3, 0.5)
    ring = rng.integers(0, 3, n)
    fraud = _make_rows(
        victims[grp],
        np.where(at_merchant, merchant, _pick(rng, world.merchants_in(CLONE_CATS), n)),
        ts,
        money(np.where(at_merchant, rng.uniform(250.0, 1500.0, n), rng.uniform(500.0, 3000.0, n))),
        np.where(at_merchant, TYPE["online"], TYPE["purchase"]),
        world.home_currency[victims[grp]],
        np.where(at_merchant, world.devices[victims[grp], 0], ring_dev[ring]),
        np.where(at_merchant, world.ips[victims[grp], 0], ring_ip[ring]),
        2,
    )
    return visits, fraud, merchant


def spree_lookalikes(
    rng: np.random.Generator, world: World, custs: NDArray[np.int32], win: Window
) -> Rows:
    """Legitimate big-ticket sprees (sometimes new phone or hotel wifi, sometimes at night)."""
    m = custs.size
    k = rng.integers(2, 6, m)
    t0 = _fraud_start(rng, world, custs, win)
    dur = min(3 * DAY_S, win.span // 5) * rng.uniform(0.1, 1.0, m)
    ts = _to_night(rng, _spread(rng, t0, k, dur), 0.35)
    grp = np.repeat(np.arange(m), k)
    new_dev = rng.random(m) < 0.3
    new_ip = rng.random(m) < 0.3
    merch = _pick(rng, world.merchants_in(ATO_CATS), grp.size)
    is_elec = world.merchant_category[merch] == CAT["electronics"]
    return _make_rows(
        custs[grp],
        merch,
        ts,
        money(loguniform(rng, 400.0, 3000.0, grp.size)),
        np.where(is_elec & (rng.random(grp.size) < 0.5), TYPE["purchase"], TYPE["online"]),
        world.home_currency[custs[grp]],
        np.where(new_dev, new_devices(rng, m), world.devices[custs, 0])[grp],
        np.where(new_ip, random_ips(rng, m, 0.3), world.ips[custs, 0])[grp],
        -1,
    )


def micro_lookalikes(
    rng: np.random.Generator, world: World, custs: NDArray[np.int32], win: Window
) -> Rows:
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
        TYPE["online"],
        world.home_currency[custs[grp]],
        np.where(new_dev, new_devices(rng, m), world.devices[custs, 0])[grp],
        np.where(new_ip, random_ips(rng, m, 0.3), world.ips[custs, 0])[grp],
        -1,
    )
