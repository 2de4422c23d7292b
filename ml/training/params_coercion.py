"""dbt vars to typed settings: the one coercion every training params dataclass uses
(customer models: ``if_*``, ``rf_*``, ``retrain_*``; transaction classifier: ``tc_*``).

dbt renders vars as text in a Python model's config (``"10"``, ``"none"``, ``"[1, 2]"``):
``coerce`` reads such text back as JSON and casts to the default's type; ``is_unset`` is the one
rule for "no value given" (None, empty, ``none``, ``null``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

UNSET_TEXT = frozenset({"", "none", "null"})


def is_unset(value: Any) -> bool:
    """None, or text that means no value (empty, ``none``, ``null``, any case and padding)."""
    return value is None or (isinstance(value, str) and value.strip().lower() in UNSET_TEXT)


def coerce(value: Any, default: Any) -> Any:
    """Cast a dbt var (often rendered as text) to the type of the default."""
    if isinstance(value, str):
        if is_unset(value):
            return default
        text = value.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def from_mapping(cls: Any, values: Mapping[str, Any] | None, prefix: str = "") -> Any:
    """Build a params dataclass from ``{prefix + field: value}``; None / missing = default."""
    values = values or {}
    kwargs = {}
    for f in fields(cls):
        key = prefix + f.name
        if key in values and values[key] is not None:
            kwargs[f.name] = coerce(values[key], f.default)
    return cls(**kwargs)
