"""``RedisState``: the online feature state in Redis, shared by several ``fraud-serve`` workers
(``FRAUD_SERVE_STATE=redis://host:port/db``), with the semantics of ``InMemoryState``: the same
``History`` for a transaction (so the same features), a retried transaction_id counted once,
the earliest report is the label (label_known_at = max(reported_at, transaction_at)), the same
pruning by event time. ``tests/python/serving/test_redis_state.py`` replays the fixture through
both and asserts every feature row and report outcome identical.

Keys (all under ``<prefix>:``; one Redis instance, not Cluster: the scripts build key names):

=================  =======  ==================================================================
``c:<customer>``   zset     the customer's transactions: score = time (µs, exact in a double
                            below 2^53), member = JSON [at, cents, device, ip, merchant, id]
``clast``          zset     customer -> time of its newest transaction (pruning)
``mt:<merchant>``  zset     the merchant's transactions: score = time, member = id
``ml:<merchant>``  zset     the merchant's labels: score = label_known_at, member = id (a
                            report that moves a label earlier is one ZADD)
``mseen``          set      merchants with transactions (stats, pruning)
``tx``             hash     id -> "<time> <merchant>" (HSETNX: the dedupe), what a report needs
``txat``           zset     id -> time (report retention)
``lab``            hash     id -> label_known_at
``created``        hash     customer -> creation day (days since the epoch)
``merchants``      set      known merchant ids (bronze.merchants_raw)
``clock``          string   newest event time seen; ``pruned``: clock of the last prune
``bootstrapped``   string   set once the warehouse bootstrap is complete (``fraud-serve``)
=================  =======  ==================================================================

Writes are Lua scripts (one round trip, atomic: two workers adding the same transaction_id
concurrently count it once); ``history`` is one read-only script that reads the customer's
lookback [t - lookback, t) and counts the merchant windows in place (ZCOUNT,
``History.merchant_counts``): one command, cheaper on the client than a pipeline. A scored
transaction takes one round trip: ``history_and_add`` reads its history and records it in
one script.
Pruning follows ``InMemoryState``: when the clock has advanced a day since the last prune,
customers whose newest transaction is older than lookback + slack are deleted, merchant windows
are trimmed to it, transactions older than the report retention are forgotten; a customer's own
records are also trimmed to lookback + slack whenever it transacts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

import orjson
import redis

from ml.serving import feature_spec as spec
from ml.serving.config import PREFIX
from ml.serving.online_features import MICROS_PER_DAY, History, Record, Transaction
from ml.serving.state import (
    DEFAULT_REPORT_RETENTION_DAYS,
    PRUNE_SLACK_MICROS,
    REPORT_ACCEPTED,
    REPORT_DUPLICATE,
    REPORT_UNKNOWN_TRANSACTION,
    ReportOutcome,
)

CLOCK_REFRESH_S = 1.0  # the clock read for request validation may be this stale
CHUNK = 5_000

# shared by both write scripts: ARGV[1..4] = prefix, keep (lookback + slack), retention, day
_COMMON = """
local P = ARGV[1]
local KEEP = tonumber(ARGV[2])
local RETAIN = tonumber(ARGV[3])
local DAY = tonumber(ARGV[4])
local function fmt(x) return string.format('%.0f', x) end
local function prune(clock)
  redis.call('SET', P .. ':pruned', fmt(clock))
  local horizon = '(' .. fmt(clock - KEEP)
  for _, cid in ipairs(redis.call('ZRANGEBYSCORE', P .. ':clast', '-inf', horizon)) do
    redis.call('DEL', P .. ':c:' .. cid)
  end
  redis.call('ZREMRANGEBYSCORE', P .. ':clast', '-inf', horizon)
  for _, mid in ipairs(redis.call('SMEMBERS', P .. ':mseen')) do
    redis.call('ZREMRANGEBYSCORE', P .. ':mt:' .. mid, '-inf', horizon)
    redis.call('ZREMRANGEBYSCORE', P .. ':ml:' .. mid, '-inf', horizon)
  end
  local retained = '(' .. fmt(clock - RETAIN)
  while true do
    local ids = redis.call('ZRANGEBYSCORE', P .. ':txat', '-inf', retained, 'LIMIT', 0, 500)
    if #ids == 0 then break end
    redis.call('HDEL', P .. ':tx', unpack(ids))
    redis.call('HDEL', P .. ':lab', unpack(ids))
    redis.call('ZREM', P .. ':txat', unpack(ids))
  end
end
local function advance(at)
  local clock = tonumber(redis.call('GET', P .. ':clock') or '0')
  if at > clock then
    clock = at
    redis.call('SET', P .. ':clock', fmt(clock))
  end
  local pruned = tonumber(redis.call('GET', P .. ':pruned') or '0')
  if clock - pruned >= DAY then prune(clock) end
  return clock
end
"""

# the customer's records in [t - lookback, t) and the merchant window counts:
# ARGV[first] = t - lookback, ARGV[first + 1 ..] = t - N per merchant window ->
# {creation day or nil, known merchant 0/1, records, then per window: transactions, labels}
_READ = """
local function read_history(cid, mid, t_s, first)
  local before = '(' .. t_s
  local out = {
    redis.call('HGET', P .. ':created', cid),
    redis.call('SISMEMBER', P .. ':merchants', mid),
    redis.call('ZRANGEBYSCORE', P .. ':c:' .. cid, ARGV[first], before),
  }
  for i = first + 1, #ARGV do
    out[#out + 1] = redis.call('ZCOUNT', P .. ':mt:' .. mid, ARGV[i], before)
    out[#out + 1] = redis.call('ZCOUNT', P .. ':ml:' .. mid, ARGV[i], before)
  end
  return out
end
"""

# one transaction (id, time, customer, merchant, customer record) -> -1 (id seen) or the clock
_ADD = """
local function add_transaction(tid, at_s, cid, mid, member)
  if redis.call('HSETNX', P .. ':tx', tid, at_s .. ' ' .. mid) == 0 then return -1 end
  redis.call('ZADD', P .. ':txat', at_s, tid)
  redis.call('ZADD', P .. ':c:' .. cid, at_s, member)
  redis.call('ZADD', P .. ':clast', 'GT', at_s, cid)
  redis.call('ZADD', P .. ':mt:' .. mid, at_s, tid)
  redis.call('SADD', P .. ':mseen', mid)
  local clock = advance(tonumber(at_s))
  redis.call('ZREMRANGEBYSCORE', P .. ':c:' .. cid, '-inf', '(' .. fmt(clock - KEEP))
  return clock
end
"""

# ARGV[5..9] = transaction id, time, customer, merchant, customer record
ADD_TRANSACTION = (
    _COMMON + _ADD + "return add_transaction(ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])"
)
# ARGV[5..7] = customer, merchant, t; ARGV[8..] = window starts (_READ)
HISTORY = _COMMON + _READ + "return read_history(ARGV[5], ARGV[6], ARGV[7], 8)"
# ADD_TRANSACTION's arguments, then ARGV[10..] = window starts: the history before the
# transaction, then the transaction recorded (InMemoryState.history then add_transaction)
HISTORY_AND_ADD = (
    _COMMON
    + _READ
    + _ADD
    + """
local out = read_history(ARGV[7], ARGV[8], ARGV[6], 10)
out[#out + 1] = add_transaction(ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
return out
"""
)

# ARGV[5..6] = transaction id, reported_at -> {0} unknown, {1, at, merchant} accepted,
# {2, previous, merchant} duplicate
ADD_REPORT = (
    _COMMON
    + """
local tid, rep_s = ARGV[5], ARGV[6]
local known = redis.call('HGET', P .. ':tx', tid)
if not known then return {0} end
local sp = string.find(known, ' ', 1, true)
local tat_s, mid = string.sub(known, 1, sp - 1), string.sub(known, sp + 1)
local at_s = rep_s
if tonumber(tat_s) > tonumber(rep_s) then at_s = tat_s end
local at = tonumber(at_s)
local previous = redis.call('HGET', P .. ':lab', tid)
if previous and tonumber(previous) <= at then return {2, previous, mid} end
redis.call('HSET', P .. ':lab', tid, at_s)
redis.call('ZADD', P .. ':ml:' .. mid, at_s, tid)
advance(at)
return {1, at_s, mid}
"""
)

_OUTCOMES = {0: REPORT_UNKNOWN_TRANSACTION, 1: REPORT_ACCEPTED, 2: REPORT_DUPLICATE}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _chunks(items: Iterable[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class RedisState:
    """The shared state (module docstring); one instance per worker, each its own connection."""

    def __init__(
        self,
        url: str,
        prefix: str = "fraud-serve",
        report_retention_days: int = DEFAULT_REPORT_RETENTION_DAYS,
        client: redis.Redis | None = None,
    ) -> None:
        if not PREFIX.fullmatch(prefix):
            raise ValueError(f"Redis key prefix {prefix!r}: letters, digits, _ . - (1-64)")
        self.url = url
        self.prefix = prefix
        self.redis = client or redis.Redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=5
        )
        keep = spec.LOOKBACK.micros + PRUNE_SLACK_MICROS
        self._common = [prefix, keep, report_retention_days * MICROS_PER_DAY, MICROS_PER_DAY]
        self._add_transaction = self.redis.register_script(ADD_TRANSACTION)
        self._add_report = self.redis.register_script(ADD_REPORT)
        self._history = self.redis.register_script(HISTORY)
        self._history_and_add = self.redis.register_script(HISTORY_AND_ADD)
        self._clock = 0
        self._clock_read = 0.0

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    # -- reads --------------------------------------------------------------------------------
    @property
    def clock(self) -> int:
        """The newest event time seen by any worker (refreshed every ``CLOCK_REFRESH_S``)."""
        now = time.monotonic()
        if now - self._clock_read > CLOCK_REFRESH_S:
            value = self.redis.get(self.key("clock"))
            self._clock = max(self._clock, int(value) if value else 0)
            self._clock_read = now
        return self._clock

    def history(self, txn: Transaction) -> History:
        args = [txn.customer_id, txn.merchant_id, txn.at, *self._starts(txn.at)]
        return self._parse_history(self._history(keys=[], args=[*self._common, *args]))

    def history_and_add(self, txn: Transaction) -> tuple[History, bool]:
        """``history(txn)`` then ``add_transaction(txn)`` in one atomic round trip."""
        args = [*self._common, *self._add_args(txn), *self._starts(txn.at)]
        *reply, clock = self._history_and_add(keys=[], args=args)
        return self._parse_history(reply), self._added(clock)

    @staticmethod
    def _starts(t: int) -> list[int]:
        return [t - spec.LOOKBACK.micros, *(t - w.micros for w in spec.MERCHANT_WINDOWS)]

    @staticmethod
    def _parse_history(reply: list[Any]) -> History:
        created, known, members, *counts = reply
        records = []
        for member in members:
            at, cents, device, ip, merchant, _ = orjson.loads(member)
            records.append(Record(at, cents, device, ip, merchant))
        merchant_counts = {
            window.name: (int(counts[2 * i]), int(counts[2 * i + 1]))
            for i, window in enumerate(spec.MERCHANT_WINDOWS)
        }
        return History(
            customer=records,
            customer_created_day=int(created) if created is not None else None,
            is_known_merchant=bool(known),
            merchant_counts=merchant_counts,
        )

    def stats(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self.key("clast"))
        pipe.scard(self.key("mseen"))
        pipe.hlen(self.key("tx"))
        pipe.hlen(self.key("lab"))
        customers, merchants, transactions, labels = pipe.execute()
        return {
            "customers": customers,
            "merchants": merchants,
            "transactions": transactions,
            "labels": labels,
        }

    # -- writes -------------------------------------------------------------------------------
    def set_customers(self, created_days: Iterable[tuple[str, int]]) -> None:
        for chunk in _chunks(created_days):
            self.redis.hset(self.key("created"), mapping={c: int(d) for c, d in chunk})

    def set_merchants(self, merchant_ids: Iterable[str]) -> None:
        for chunk in _chunks(merchant_ids):
            self.redis.sadd(self.key("merchants"), *chunk)

    def add_transaction(self, txn: Transaction) -> bool:
        """Record a scored transaction; False when its id was seen before (by any worker)."""
        args = [*self._common, *self._add_args(txn)]
        return self._added(self._add_transaction(keys=[], args=args))

    def add_transactions(self, txns: Sequence[Transaction]) -> list[bool]:
        """``add_transaction`` of each, in order, pipelined (one round trip per 1,000)."""
        out: list[bool] = []
        for chunk in _chunks(txns, 1000):
            pipe = self.redis.pipeline(transaction=False)
            for txn in chunk:
                args = [*self._common, *self._add_args(txn)]
                self._add_transaction(keys=[], args=args, client=pipe)
            out += [self._added(clock) for clock in pipe.execute()]
        return out

    @staticmethod
    def _add_args(txn: Transaction) -> list[Any]:
        record = [txn.at, txn.cents, txn.device_id, txn.ip_address, txn.merchant_id]
        member = orjson.dumps([*record, txn.transaction_id])
        return [txn.transaction_id, txn.at, txn.customer_id, txn.merchant_id, member]

    def _added(self, clock: Any) -> bool:
        if int(clock) < 0:
            return False
        self._clock = max(self._clock, int(clock))
        return True

    def add_report(self, transaction_id: str, reported_at: int) -> ReportOutcome:
        """A fraud report (``InMemoryState.add_report``), atomically across workers."""
        reply = self._add_report(keys=[], args=[*self._common, transaction_id, int(reported_at)])
        status = _OUTCOMES[int(reply[0])]
        if len(reply) == 1:
            return ReportOutcome(status)
        return ReportOutcome(status, int(reply[1]), _text(reply[2]))

    # -- lifecycle ----------------------------------------------------------------------------
    def bootstrapped(self) -> str | None:
        """The summary recorded by ``mark_bootstrapped``, or None (never bootstrapped)."""
        value = self.redis.get(self.key("bootstrapped"))
        return None if value is None else _text(value)

    def mark_bootstrapped(self, summary: str) -> None:
        self.redis.set(self.key("bootstrapped"), summary)

    def clear(self) -> int:
        """Delete every key of this prefix (tests; a fresh bootstrap); returns how many."""
        deleted = 0
        for chunk in _chunks(self.redis.scan_iter(match=f"{self.prefix}:*", count=1000), 500):
            deleted += int(self.redis.delete(*chunk))
        return deleted

    def close(self) -> None:
        self.redis.close()
