"""Settings of ``fraud-serve``, each from its environment variable (``FRAUD_`` + the name in
upper case, ``ml.settings``), validated into values; README "Real-time scoring" lists them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ml.serving.requests import Limits
from ml.serving.state import DEFAULT_REPORT_RETENTION_DAYS
from ml.settings import PROJECT_ROOT, env_var_name, from_env

FALLBACK_TARGETS = ("local", "test")  # = ml.scoring.selection.ScoringSettings.fallback_targets
MEMORY_STATE = "memory"
# redis://host[:port][/db], no credentials in the URL (a password would be a secret in a setting)
REDIS_URL = re.compile(
    r"redis://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?(?:/(?P<db>\d{1,2}))?"
)
PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_WORKERS = 64


class SettingError(ValueError):
    """A setting with an invalid value (the message names its environment variable)."""


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = from_env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{env_var_name(name)}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingError(f"{env_var_name(name)}={value} must be at least {minimum}")
    return value


def parse_state_url(raw: str) -> str:
    """``memory`` or a validated ``redis://host[:port][/db]`` URL (FRAUD_SERVE_STATE)."""
    if raw == MEMORY_STATE:
        return raw
    match = REDIS_URL.fullmatch(raw)
    port = int(match["port"] or 6379) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise SettingError(
            f"FRAUD_SERVE_STATE={raw!r} must be 'memory' or a Redis URL "
            "redis://host[:port][/db] (e.g. redis://127.0.0.1:6379/0, no credentials)"
        )
    return raw


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = from_env(name, default) or default
    if value not in allowed:
        raise SettingError(f"{env_var_name(name)}={value!r} must be one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    target: str = "local"
    token: str | None = field(default=None, repr=False)
    state_url: str = MEMORY_STATE  # or redis://host:port/db (ml.serving.redis_state)
    state_prefix: str = "fraud-serve"  # Redis key prefix (workers sharing it share the state)
    workers: int = 1  # > 1 needs Redis state
    log_dir: Path = PROJECT_ROOT / "warehouse" / "decisions"
    log_sync: str = "fsync"
    log_max_bytes: int = 64 * 1024 * 1024
    alias_poll_seconds: int = 30
    max_body_bytes: int = 1024 * 1024
    report_retention_days: int = DEFAULT_REPORT_RETENTION_DAYS
    limits: Limits = field(default_factory=Limits)
    bootstrap: bool = True

    def __post_init__(self) -> None:
        parse_state_url(self.state_url)
        if not PREFIX.fullmatch(self.state_prefix):
            raise SettingError(
                f"FRAUD_SERVE_STATE_PREFIX={self.state_prefix!r}: 1-64 letters, digits, _ . -"
            )
        if not 1 <= self.workers <= MAX_WORKERS:
            raise SettingError(f"FRAUD_SERVE_WORKERS={self.workers} must be in 1..{MAX_WORKERS}")
        if self.workers > 1 and self.state_url == MEMORY_STATE:
            raise SettingError(
                f"FRAUD_SERVE_WORKERS={self.workers} (--workers) needs shared state: set "
                "FRAUD_SERVE_STATE=redis://host:port/db (in-process state is one worker's)"
            )

    @property
    def uses_redis(self) -> bool:
        return self.state_url != MEMORY_STATE

    @property
    def allows_unpromoted(self) -> bool:
        return self.target in FALLBACK_TARGETS

    @classmethod
    def from_env(cls) -> ServeSettings:
        warehouse = Path(from_env("warehouse_dir") or PROJECT_ROOT / "warehouse")
        token_var = from_env("serve_token_env", "FRAUD_SERVE_TOKEN") or "FRAUD_SERVE_TOKEN"
        return cls(
            host=from_env("serve_host", "127.0.0.1") or "127.0.0.1",
            port=_int("serve_port", 8765, 1),
            target=os.environ.get("DBT_TARGET") or "local",
            token=os.environ.get(token_var) or None,
            state_url=parse_state_url(from_env("serve_state", MEMORY_STATE) or MEMORY_STATE),
            state_prefix=from_env("serve_state_prefix", "fraud-serve") or "fraud-serve",
            workers=_int("serve_workers", 1, 1),
            log_dir=Path(from_env("serve_log_dir") or warehouse / "decisions"),
            log_sync=_choice("serve_log_sync", "fsync", ("fsync", "write")),
            log_max_bytes=_int("serve_log_max_bytes", 64 * 1024 * 1024, 4096),
            alias_poll_seconds=_int("serve_alias_poll_seconds", 30, 1),
            max_body_bytes=_int("serve_max_body_bytes", 1024 * 1024, 1024),
            report_retention_days=_int(
                "serve_report_retention_days", DEFAULT_REPORT_RETENTION_DAYS, 31
            ),
            limits=Limits(
                max_amount=float(_int("serve_max_amount", 1_000_000, 1)),
                max_future_seconds=_int("serve_max_future_seconds", 300),
                max_past_seconds=_int("serve_max_past_seconds", 86400),
                max_batch=_int("serve_max_batch", 1000, 1),
            ),
            bootstrap=(from_env("serve_bootstrap", "true") or "true").lower() != "false",
        )
