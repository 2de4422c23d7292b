"""One home for the project's paths and for the rule that names a setting's environment
variable. Every setting and its default is listed once in README.md ("Settings").

A setting has one name, the dbt var's (``schema_prefix``, ``scoring_alias``...). A CLI, or a
dbt model whose var is unset, reads the same setting from the environment variable
``env_var_name(name)``: ``FRAUD_`` + the name in upper case (``FRAUD_SCHEMA_PREFIX``).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "config"
PROMOTION_GATES_FILE = CONFIG_DIR / "promotion_gates.yml"
MONITORING_FILE = CONFIG_DIR / "monitoring.yml"
MONITORING_OUTPUT_DIR = PROJECT_ROOT / "reports" / "monitoring" / "latest"
DEFAULT_MLFLOW_DIR = PROJECT_ROOT / ".mlflow"

ENV_PREFIX = "FRAUD_"


def env_var_name(setting: str) -> str:
    """The environment variable of a setting: ``schema_prefix`` → ``FRAUD_SCHEMA_PREFIX``."""
    return ENV_PREFIX + setting.strip().upper()


def from_env(setting: str, default: str | None = None) -> str | None:
    """A setting's value from its environment variable (empty = unset), else ``default``."""
    return os.environ.get(env_var_name(setting)) or default


def with_env_fallback(values: dict[str, object], names: tuple[str, ...]) -> dict[str, object]:
    """``values`` (dbt vars) where each of ``names`` that is unset (None or empty) takes its
    environment variable, so a dbt model and a CLI read one setting the same way."""
    merged = dict(values)
    for name in names:
        if merged.get(name) in (None, "") and from_env(name) is not None:
            merged[name] = from_env(name)
    return merged
