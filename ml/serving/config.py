"""Settings of ``fraud-serve``, each from its environment variable (``FRAUD_`` + the name in
upper case, ``ml.settings``), validated into values; README "Real-time scoring" lists them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ml.serving.requests import Limits
from ml.serving.state import DEFAULT_REPORT_RETENTION_DAYS
from ml.settings import PROJECT_ROOT, env_var_name, from_env

FALLBACK_TARGETS = ("local", "test")  # = ml.scoring.selection.ScoringSettings.fallback_targets


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
    state_url: str = "memory"  # the only store so far (Redis: open work, README)
    log_dir: Path = PROJECT_ROOT / "warehouse" / "decisions"
    log_sync: str = "fsync"
    log_max_bytes: int = 64 * 1024 * 1024
    alias_poll_seconds: int = 30
    max_body_bytes: int = 1024 * 1024
    report_retention_days: int = DEFAULT_REPORT_RETENTION_DAYS
    limits: Limits = field(default_factory=Limits)
    bootstrap: bool = True

    @property
    def allows_unpromoted(self) -> bool:
        return self.target in FALLBACK_TARGETS

    @classmethod
    def from_env(cls) -> ServeSettings:
        warehouse = Path(from_env("warehouse_dir") or PROJECT_ROOT / "warehouse")
        token_var = from_env("serve_token_env", "FRAUD_SERVE_TOKEN") or "FRAUD_SERVE_TOKEN"
        state_url = from_env("serve_state", "memory") or "memory"
        if state_url != "memory":
            raise SettingError(
                f"FRAUD_SERVE_STATE={state_url!r}: only 'memory' (in-process state) exists yet; "
                "shared Redis state for several workers is not implemented"
            )
        return cls(
            host=from_env("serve_host", "127.0.0.1") or "127.0.0.1",
            port=_int("serve_port", 8765, 1),
            target=os.environ.get("DBT_TARGET") or "local",
            token=os.environ.get(token_var) or None,
            state_url=state_url,
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
