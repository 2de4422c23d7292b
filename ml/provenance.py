"""Where a result came from and when: git commit, the UTC clock, and the dbt glue both dbt
entry points (training and scoring models) use to read relations and the invocation id."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ml.settings import PROJECT_ROOT, from_env


def _git(*args: str) -> str | None:
    """Stripped stdout of ``git <args>`` in the project, or None outside a git work tree."""
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def head_commit() -> str:
    """``git rev-parse HEAD`` of the project, or ``'unknown'`` outside a git work tree."""
    return _git("rev-parse", "HEAD") or "unknown"


def recorded_commit() -> str:
    """HEAD of the project (``+dirty`` with uncommitted changes); setting ``git_commit``
    (``FRAUD_GIT_COMMIT``) wins. What an audit row records."""
    configured = from_env("git_commit")
    if configured:
        return configured
    head = head_commit()
    if head == "unknown":
        return head
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return f"{head}+dirty" if dirty else head


def utc_now() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def utc_now_naive() -> datetime:
    """Now in UTC without tzinfo (the ``timestamp`` columns dbt models write)."""
    return utc_now().replace(tzinfo=None)


def to_pandas(obj: Any) -> pd.DataFrame:
    """A warehouse relation as pandas: DuckDB (``.df()``), Spark (``.toPandas()``),
    Snowpark (``.to_pandas()``) or an existing pandas frame."""
    if isinstance(obj, pd.DataFrame):
        return obj
    for method in ("df", "toPandas", "to_pandas"):
        if hasattr(obj, method):
            result = getattr(obj, method)()
            if isinstance(result, pd.DataFrame):
                # Snowflake returns upper-case names; the contract is lower case.
                result.columns = [str(c).lower() for c in result.columns]
                return result
    raise TypeError(f"cannot convert {type(obj).__name__} to pandas")


def current_dbt_invocation_id(configured: str | None = None) -> str:
    """The id of the running dbt invocation.

    In-process adapters (dbt-duckdb) read it from dbt itself, which is always current. The
    ``configured`` value (``{{ invocation_id }}`` rendered into the model's meta) is the
    fallback for remote Python runtimes; it is rendered at parse time, so with partial parsing
    it can be the id of the run that last parsed the project.
    """
    try:
        from dbt_common.invocation import get_invocation_id

        return str(get_invocation_id())
    except ImportError:
        return configured or "unknown"


# Named points of the dbt Python models where the crash-matrix test
# (tests/python/end_to_end/test_crash_matrix.py) kills the build: FRAUD_CRASH_AT=<point>.
CRASH_POINTS = ("training", "scoring", "audit")


def crash_point(point: str) -> None:
    """Test hook: SIGKILL this process (the dbt build) when the environment variable
    ``FRAUD_CRASH_AT`` names ``point``; a no-op otherwise. ``training``: a model version is
    registered, its training-run row not yet written; ``scoring``: the batch is scored,
    gold.fraud_scores not yet replaced; ``audit``: gold.fraud_scores is replaced,
    audit.model_predictions not yet appended."""
    if point not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {point!r}; known: {', '.join(CRASH_POINTS)}")
    if from_env("crash_at") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def anti_join(
    left: Any,
    right: Any,
    on: tuple[tuple[str, str], ...],
    left_not_after: tuple[str, str] | None = None,
) -> Any:
    """The rows of ``left`` with no match in ``right``: a match has every ``(left column,
    right column)`` of ``on`` equal and, with ``left_not_after = (l, r)``, ``left.l <=
    right.r``. Computed in the warehouse for a DuckDB relation or a Spark DataFrame (what
    ``dbt.ref`` returns there); anything else through pandas. The columns of ``left`` only."""
    terms = [f"l.{a} = r.{b}" for a, b in on]
    if left_not_after is not None:
        terms.append(f"l.{left_not_after[0]} <= r.{left_not_after[1]}")
    condition = " and ".join(terms)
    if hasattr(left, "set_alias"):  # DuckDB
        return left.set_alias("l").join(right.set_alias("r"), condition, how="anti")
    if hasattr(left, "toPandas"):  # Spark
        from pyspark.sql import functions as F

        return left.alias("l").join(right.alias("r"), F.expr(condition), "left_anti")
    frame = to_pandas(left).reset_index(drop=True)
    keys = [b for _, b in on] + ([left_not_after[1]] if left_not_after else [])
    other = to_pandas(right)[keys].rename(columns={b: f"__r_{b}" for b in keys})
    numbered = frame.assign(__row=range(len(frame)))
    merged = numbered.merge(
        other, left_on=[a for a, _ in on], right_on=[f"__r_{b}" for _, b in on], how="inner"
    )
    if left_not_after is not None:
        merged = merged[merged[left_not_after[0]] <= merged[f"__r_{left_not_after[1]}"]]
    return frame[~numbered["__row"].isin(set(merged["__row"]))].reset_index(drop=True)
