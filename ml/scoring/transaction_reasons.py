"""Reason codes of the transaction classifier: why one transaction scored as it did, in words
an investigator reads, from the per-row contributions of ``ml.transaction_model.contributions``
(LightGBM TreeSHAP; positive = pushes towards fraud).

The rule (one rule, two entry points that give identical text):

1. The reasons are the features with a strictly positive contribution, the largest first, at
   most ``N_REASONS`` (3). Ties keep ``FEATURE_COLUMNS`` order; a NaN contribution never counts.
2. Each is rendered by ``WORDING[feature]``: the first case whose condition holds on the row's
   feature values, its template filled with those values (``"amount 4,950.00 is 38 times this
   customer's 30-day average of 130.00"``).
3. Fewer than 3 positive contributions: the remaining slots are filled, never null, with
   neutral context in this order: ``NEW_CUSTOMER_NOTE`` when the row ``is_new_customer`` (a
   transaction with no history: its window features are the documented defaults of
   gold.transaction_risk_features), ``NEW_MERCHANT_NOTE`` when ``is_new_merchant`` (each note
   only once: it is also the wording of its feature), then ``NO_RISK_INDICATOR`` when no
   feature pushed towards fraud at all, else ``NO_FURTHER_INDICATOR``, and
   ``NO_FURTHER_INDICATOR`` for any slot still empty.

Entry points: ``reason_columns`` (vectorised, batch: frames in, ``reason_1..3`` out; each
distinct value is formatted once and the texts are assembled with numpy object arithmetic) and
``reasons_for_row`` (one transaction as mappings, for the online service). Both use ``WORDING``
and ``FORMATS`` only, so the same row gets the same words from either.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

import numpy as np
import pandas as pd

from ml.transaction_model import CATEGORICAL_COLUMNS, FEATURE_COLUMNS

N_REASONS = 3
REASON_COLUMNS: tuple[str, ...] = tuple(f"reason_{k}" for k in range(1, N_REASONS + 1))

NEW_CUSTOMER_NOTE = "new customer (no earlier transactions in the last 30 days)"
NEW_MERCHANT_NOTE = "new merchant (no transactions at this merchant in the last 30 days)"
NO_RISK_INDICATOR = "no risk indicator: no feature pushes this transaction towards fraud"
NO_FURTHER_INDICATOR = "no further risk indicator"

LOOKBACK_SECONDS = 30 * 86400  # seconds_since_previous_txn's cap (no transaction in 30 days)

# ---------------------------------------------------------------------------------------------
# Value formats: ``{field:format}`` in a template. Each takes one value (float, or str for the
# categorical features) and returns its text; ``n:<noun>`` is a count with its noun
# ("1 transaction", "3 transactions").
# ---------------------------------------------------------------------------------------------


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _money(value: Any) -> str:
    return f"{value:,.2f}" if _finite(value) else "n/a"


def _count(value: Any) -> str:
    return f"{round(value):,}" if _finite(value) else "n/a"


def _ratio(value: Any) -> str:
    if not _finite(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.1f}"


def _percent(value: Any) -> str:
    if not _finite(value):
        return "n/a"
    percent = 100.0 * value
    return f"{percent:,.0f}%" if abs(percent) >= 10 or percent == 0 else f"{percent:.1f}%"


def _plural(count: float, noun: str) -> str:
    if count == 1:
        return noun
    return noun + ("es" if noun.endswith(("s", "sh", "ch", "x")) else "s")


def _duration(value: Any) -> str:
    if not _finite(value):
        return "n/a"
    seconds = max(float(value), 0.0)
    for unit, size in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= size:
            amount = seconds / size
            text = f"{amount:.0f}" if amount >= 10 or amount == round(amount) else f"{amount:.1f}"
            return f"{text} {_plural(float(text), unit)}"
    whole = round(seconds)
    return f"{whole} {_plural(whole, 'second')}"


def _hour(value: Any) -> str:
    if not _finite(value):
        return "n/a"
    hour = int(value)
    return f"{hour:02d}:00-{hour:02d}:59"


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return str(value).replace("_", " ")


FORMATS: dict[str, Callable[[Any], str]] = {
    "money": _money,
    "count": _count,
    "ratio": _ratio,
    "percent": _percent,
    "duration": _duration,
    "hour": _hour,
    "text": _text,
}


def formatter(spec: str) -> Callable[[Any], str]:
    """The value format of a template field (``FORMATS`` key or ``n:<noun>``)."""
    if spec.startswith("n:"):
        noun = spec[2:]
        return lambda value: (
            f"{_count(value)} {_plural(round(value), noun)}" if _finite(value) else "n/a"
        )
    if spec not in FORMATS:
        raise KeyError(f"unknown reason format {spec!r} ({', '.join(FORMATS)}, n:<noun>)")
    return FORMATS[spec]


# ---------------------------------------------------------------------------------------------
# The wording table
# ---------------------------------------------------------------------------------------------

Condition = Callable[[Any], Any]  # row values (mapping of scalars or of arrays) -> bool(s)


@dataclass(frozen=True)
class Case:
    """One wording of a feature: ``template`` when ``when(values)`` holds (``None``: always).
    ``when`` uses only comparisons and ``&``/``|``/``~`` so it works on a scalar row and on
    column arrays alike."""

    template: str
    when: Condition | None = None
    # the template as: prefix text, then per field (name, format, the text after it)
    prefix: str = field(init=False, repr=False)
    segments: tuple[tuple[str, str, str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        parsed = list(Formatter().parse(self.template))
        segments: list[tuple[str, str, str]] = []
        for i, (_, name, spec, _) in enumerate(parsed):
            if name is None:
                continue
            if not spec:
                raise ValueError(f"field {{{name}}} of {self.template!r} has no format")
            formatter(spec)
            suffix = parsed[i + 1][0] if i + 1 < len(parsed) else ""
            segments.append((name, spec, suffix))
        object.__setattr__(self, "prefix", parsed[0][0] if parsed else "")
        object.__setattr__(self, "segments", tuple(segments))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.segments)


def _window_cases(name: str, phrase: str) -> dict[str, tuple[Case, ...]]:
    count, total, avg = (
        f"customer_txn_count_{name}",
        f"customer_amount_sum_{name}",
        f"customer_amount_avg_{name}",
    )
    none = Case(f"no earlier transaction of this customer in the {phrase}")
    return {
        count: (
            Case(
                f"{{{count}:n:transaction}} by this customer in the {phrase}",
                lambda v, c=count: v[c] > 0,
            ),
            none,
        ),
        total: (
            Case(
                f"{{{total}:money}} spent by this customer in the {phrase} over "
                f"{{{count}:n:transaction}}",
                lambda v, c=count: v[c] > 0,
            ),
            none,
        ),
        avg: (
            Case(
                f"average amount {{{avg}:money}} over this customer's {{{count}:n:transaction}} "
                f"in the {phrase}",
                lambda v, c=count: v[c] > 0,
            ),
            none,
        ),
    }


def _relative_amount_cases(name: str, days: int) -> tuple[Case, ...]:
    count = f"customer_txn_count_{name}"
    return (
        Case(
            f"amount {{amount:money}} is {{amount_to_customer_avg_{name}:ratio}} times this "
            f"customer's {days}-day average of {{customer_amount_avg_{name}:money}}",
            lambda v, c=count: v[c] > 0,
        ),
        Case(
            f"amount {{amount:money}} with no earlier transaction of this customer in {days} "
            "days to compare"
        ),
    )


def _merchant_cases(name: str, phrase: str) -> dict[str, tuple[Case, ...]]:
    txn, fraud, rate = (
        f"merchant_txn_count_{name}",
        f"merchant_fraud_count_{name}",
        f"merchant_fraud_rate_{name}",
    )
    none = Case(f"no transaction at this merchant in the {phrase}")
    return {
        txn: (
            Case(
                f"{{{txn}:n:transaction}} at this merchant in the {phrase}",
                lambda v, t=txn: v[t] > 0,
            ),
            none,
        ),
        fraud: (
            Case(
                f"{{{fraud}:n:fraud}} reported at this merchant in the {phrase} (of "
                f"{{{txn}:n:transaction}})",
                lambda v, t=txn: v[t] > 0,
            ),
            Case(f"{{{fraud}:n:fraud}} reported at this merchant in the {phrase}"),
        ),
        rate: (
            Case(
                f"merchant's {name.replace('d', '-day')} fraud rate {{{rate}:percent}} over "
                f"{{{txn}:n:transaction}}",
                lambda v, t=txn: v[t] > 0,
            ),
            none,
        ),
    }


def _flag(true_text: str, false_text: str, column: str) -> tuple[Case, ...]:
    return (Case(true_text, lambda v, c=column: v[c] > 0.5), Case(false_text))


WORDING: dict[str, tuple[Case, ...]] = {
    "amount": (
        Case(
            "amount {amount:money} is {amount_to_customer_avg_30d:ratio} times this customer's "
            "30-day average of {customer_amount_avg_30d:money}",
            lambda v: v["customer_txn_count_30d"] > 0,
        ),
        Case("amount {amount:money} (no earlier transaction of this customer in 30 days)"),
    ),
    "transaction_hour": (Case("made at {transaction_hour:hour} UTC"),),
    "is_night": _flag(
        "made at night ({transaction_hour:hour} UTC)",
        "made in the daytime ({transaction_hour:hour} UTC)",
        "is_night",
    ),
    "is_weekend": _flag("made at the weekend", "made on a weekday", "is_weekend"),
    "transaction_type": (Case("transaction type {transaction_type:text}"),),
    "merchant_category": (Case("merchant category {merchant_category:text}"),),
    **_window_cases("1h", "last hour"),
    **_window_cases("1d", "last 24 hours"),
    **_window_cases("7d", "last 7 days"),
    **_window_cases("30d", "last 30 days"),
    "amount_to_customer_avg_7d": _relative_amount_cases("7d", 7),
    "amount_to_customer_avg_30d": _relative_amount_cases("30d", 30),
    "seconds_since_previous_txn": (
        Case(
            "{seconds_since_previous_txn:duration} since this customer's previous transaction",
            lambda v: v["seconds_since_previous_txn"] < LOOKBACK_SECONDS,
        ),
        Case("no transaction of this customer in the previous 30 days"),
    ),
    "is_new_device_30d": _flag(
        "first use of this device (not used by this customer in the last 30 days)",
        "device used by this customer in the last 30 days",
        "is_new_device_30d",
    ),
    "is_new_ip_30d": _flag(
        "first use of this IP address (not used by this customer in the last 30 days)",
        "IP address used by this customer in the last 30 days",
        "is_new_ip_30d",
    ),
    "is_new_merchant_for_customer_30d": _flag(
        "first payment to this merchant (none by this customer in the last 30 days)",
        "merchant paid by this customer in the last 30 days",
        "is_new_merchant_for_customer_30d",
    ),
    "distinct_devices_1d": (
        Case("{distinct_devices_1d:n:device} used by this customer in the last 24 hours"),
    ),
    "distinct_ips_1d": (
        Case("{distinct_ips_1d:n:IP address} used by this customer in the last 24 hours"),
    ),
    **_merchant_cases("1d", "last 24 hours"),
    **_merchant_cases("7d", "last 7 days"),
    **_merchant_cases("30d", "last 30 days"),
    "customer_tenure_days": (
        Case(
            "customer for {customer_tenure_days:n:day}",
            lambda v: v["customer_tenure_days"] >= 1,
        ),
        Case("account opened on the day of this transaction"),
    ),
    "is_new_customer": _flag(
        NEW_CUSTOMER_NOTE, "customer with transactions in the last 30 days", "is_new_customer"
    ),
    "is_new_merchant": _flag(
        NEW_MERCHANT_NOTE, "merchant with transactions in the last 30 days", "is_new_merchant"
    ),
}

FEATURE_INDEX: dict[str, int] = {name: j for j, name in enumerate(FEATURE_COLUMNS)}
# the features the neutral notes look at
_NOTES: tuple[tuple[str, str], ...] = (
    ("is_new_customer", NEW_CUSTOMER_NOTE),
    ("is_new_merchant", NEW_MERCHANT_NOTE),
)


def _require(columns: Sequence[str] | Mapping[str, Any], what: str, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise KeyError(f"{what} lack(s) columns: {', '.join(missing)}")


# ---------------------------------------------------------------------------------------------
# Per row (online)
# ---------------------------------------------------------------------------------------------


def _scalar(name: str, value: Any) -> Any:
    if name in CATEGORICAL_COLUMNS:
        return value
    return float(value)


def render(feature: str, values: Mapping[str, Any]) -> str:
    """The wording of one feature on one row (``values``: feature name -> value)."""
    for case in WORDING[feature]:
        if case.when is None or bool(case.when(values)):
            return case.prefix + "".join(
                formatter(spec)(values[name]) + suffix for name, spec, suffix in case.segments
            )
    raise AssertionError(f"WORDING[{feature!r}] has no unconditional last case")


def reasons_for_row(features: Mapping[str, Any], contributions: Mapping[str, float]) -> list[str]:
    """The ``N_REASONS`` reasons of one transaction (module docstring's rule). ``features``:
    the row's ``FEATURE_COLUMNS`` (numbers or booleans; the categorical ones as text);
    ``contributions``: the row's contribution per feature. Raises ``KeyError`` naming missing
    features."""
    _require(contributions, "contributions", FEATURE_COLUMNS)
    _require(features, "features", FEATURE_COLUMNS)
    values = {name: _scalar(name, features[name]) for name in FEATURE_COLUMNS}
    positive = [
        (float(contributions[name]), -j, name)
        for j, name in enumerate(FEATURE_COLUMNS)
        if float(contributions[name]) > 0.0  # NaN > 0 is False
    ]
    top = [name for _, _, name in heapq.nlargest(N_REASONS, positive)]
    reasons = [render(name, values) for name in top]
    reasons += [note for column, note in _NOTES if values[column] > 0.5 and note not in reasons]
    if len(reasons) < N_REASONS:
        reasons.append(NO_FURTHER_INDICATOR if top else NO_RISK_INDICATOR)
    reasons += [NO_FURTHER_INDICATOR] * (N_REASONS - len(reasons))
    return reasons[:N_REASONS]


# ---------------------------------------------------------------------------------------------
# Vectorised (batch)
# ---------------------------------------------------------------------------------------------


class _Columns(Mapping[str, np.ndarray]):
    """Feature columns as arrays (numeric as float64, categorical as object), restricted to
    ``rows``; each column converted once and shared by every subset."""

    def __init__(
        self,
        frame: pd.DataFrame,
        rows: np.ndarray | None = None,
        cache: dict[str, np.ndarray] | None = None,
    ) -> None:
        self._frame = frame
        self._rows = rows
        self._cache: dict[str, np.ndarray] = {} if cache is None else cache

    def subset(self, rows: np.ndarray) -> _Columns:
        """The same columns at ``rows`` (positions within this view)."""
        absolute = rows if self._rows is None else self._rows[rows]
        return _Columns(self._frame, absolute, self._cache)

    def full(self, name: str) -> np.ndarray:
        """Column ``name`` over every row of the frame."""
        if name not in self._cache:
            column = self._frame[name]
            if name in CATEGORICAL_COLUMNS:
                array = column.astype(object).to_numpy(dtype=object)
                array = np.where(pd.isna(array), None, array)
            else:
                array = column.to_numpy(dtype="float64", na_value=np.nan)
            self._cache[name] = array
        return self._cache[name]

    def __getitem__(self, name: str) -> np.ndarray:
        array = self.full(name)
        return array if self._rows is None else array[self._rows]

    def __iter__(self) -> Iterator[str]:
        return iter(str(c) for c in self._frame.columns)

    def __len__(self) -> int:
        return len(self._frame.columns)


def _format_array(values: np.ndarray, spec: str, prefix: str, suffix: str) -> np.ndarray:
    """``prefix + formatter(spec)(value) + suffix`` of every value, each distinct value
    formatted once (the row-level work is one take)."""
    fmt = formatter(spec)
    if values.dtype == object:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        texts = np.array([prefix + fmt(u) + suffix for u in uniques], dtype=object)
        return texts[codes]
    uniques, inverse = np.unique(values, return_inverse=True)
    texts = np.array([prefix + fmt(u) + suffix for u in uniques.tolist()], dtype=object)
    return texts[inverse.reshape(-1)]


def _render_array(case: Case, columns: _Columns, n: int) -> np.ndarray:
    if not case.segments:
        return np.full(n, case.prefix, dtype=object)
    out: np.ndarray | None = None
    for name, spec, suffix in case.segments:
        texts = _format_array(columns[name], spec, case.prefix if out is None else "", suffix)
        out = texts if out is None else out + texts
    assert out is not None
    return out


def _render_feature(feature: str, columns: _Columns, n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    pending = np.arange(n)
    for case in WORDING[feature]:
        if pending.size == 0:
            break
        view = columns.subset(pending)
        if case.when is None:
            hit = np.ones(pending.size, dtype=bool)
        else:
            hit = np.broadcast_to(np.asarray(case.when(view), dtype=bool), (pending.size,))
        if hit.any():
            rows = pending[hit]
            out[rows] = _render_array(case, columns.subset(rows), rows.size)
        pending = pending[~hit]
    return out


def reason_columns(features: pd.DataFrame, contributions: pd.DataFrame) -> pd.DataFrame:
    """``reason_1`` .. ``reason_3`` for every row (module docstring's rule), indexed like
    ``features``. ``features``: the rows' ``FEATURE_COLUMNS`` (raw table columns or
    ``feature_matrix`` output); ``contributions``: one column per feature, same rows in the
    same order. Raises ``KeyError`` naming missing columns, ``ValueError`` on a length
    mismatch."""
    _require(features.columns, "features", FEATURE_COLUMNS)
    _require(contributions.columns, "contributions", FEATURE_COLUMNS)
    n = len(features)
    if len(contributions) != n:
        raise ValueError(f"{len(contributions)} contribution rows for {n} feature rows")
    if n == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=object) for c in REASON_COLUMNS}, index=features.index
        )
    ordered = list(contributions.columns) == list(FEATURE_COLUMNS)
    frame = contributions if ordered else contributions[list(FEATURE_COLUMNS)]
    contrib = np.array(frame.to_numpy(dtype="float64"), dtype="float64", copy=True)
    missing = np.isnan(contrib)
    if missing.any():
        contrib[missing] = -np.inf
    # the N_REASONS largest, by repeated argmax: its first maximum is the earliest feature, so
    # ties keep FEATURE_COLUMNS order as in reasons_for_row
    order = np.empty((n, N_REASONS), dtype=np.int64)
    positive = np.empty((n, N_REASONS), dtype=bool)
    rows_all = np.arange(n)
    for k in range(N_REASONS):
        best = np.argmax(contrib, axis=1)
        order[:, k] = best
        positive[:, k] = contrib[rows_all, best] > 0.0
        contrib[rows_all, best] = -np.inf
    columns = _Columns(features)
    out = np.empty((n, N_REASONS), dtype=object)
    chosen = np.where(positive, order, -1)
    # group the (row, slot) cells by feature: a feature is at most one reason of a row
    flat = chosen.ravel()
    by_feature = np.argsort(flat, kind="stable")
    features_sorted = flat[by_feature]
    starts = np.searchsorted(features_sorted, np.arange(len(FEATURE_COLUMNS) + 1))
    for j, feature in enumerate(FEATURE_COLUMNS):
        cells = by_feature[starts[j] : starts[j + 1]]
        if cells.size:
            rows, slots = np.divmod(cells, N_REASONS)
            out[rows, slots] = _render_feature(feature, columns.subset(rows), rows.size)
    _fill_neutral(out, positive, chosen, columns)
    return pd.DataFrame(out, columns=list(REASON_COLUMNS), index=features.index)


def _fill_neutral(
    out: np.ndarray, positive: np.ndarray, chosen: np.ndarray, columns: _Columns
) -> None:
    """Fill the slots after each row's positive reasons: the notes that apply (a note is the
    wording of its own feature when true, so it is skipped when that feature is already a
    reason), then ``NO_RISK_INDICATOR`` / ``NO_FURTHER_INDICATOR``, then
    ``NO_FURTHER_INDICATOR``."""
    n_positive = positive.sum(axis=1)
    short = np.nonzero(n_positive < N_REASONS)[0]
    if short.size == 0:
        return
    candidates: list[np.ndarray] = []
    for column, note in _NOTES:
        applies = columns.full(column)[short] > 0.5
        already = (chosen[short] == FEATURE_INDEX[column]).any(axis=1)
        candidates.append(np.where(applies & ~already, note, None))
    candidates.append(np.where(n_positive[short] > 0, NO_FURTHER_INDICATOR, NO_RISK_INDICATOR))
    candidates += [np.full(short.size, NO_FURTHER_INDICATOR, dtype=object)] * N_REASONS
    slot = n_positive[short].copy()
    for candidate in candidates:
        rows = np.nonzero((slot < N_REASONS) & pd.notna(candidate))[0]
        out[short[rows], slot[rows]] = candidate[rows]
        slot[rows] += 1
