"""JSON that is always valid: NaN, Infinity and -Infinity (which Python's json writes as bare
``NaN``/``Infinity``, not JSON: the server would reject the whole batch) become a marked value,
``{"__float__": "NaN"}``, in the manner of the scrubber's ``{"__repr__": ...}``; the UI shows it as such.

The common case costs nothing extra: the C encoder runs with ``allow_nan=False`` and only a value
it refuses takes the pre-pass that replaces the non-finite floats.
"""
from __future__ import annotations

import json
import math
from typing import Any

#: The marker's key (DESIGN.md, wire format: a value a float's JSON cannot carry).
FLOAT_MARKER = "__float__"

_strict = json.JSONEncoder(separators=(",", ":"), default=str, allow_nan=False).encode


def _marked(value: float) -> Any:
    return {FLOAT_MARKER: "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")}


def finite(value: Any, depth: int = 0) -> Any:
    """``value`` with every non-finite float (in dicts, lists, tuples) replaced by its marker."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _marked(value)
    if depth > 200:
        return value
    if isinstance(value, dict):
        # A non-finite float key is written as Python writes it ("nan"), as json does with allow_nan.
        return {(repr(k) if isinstance(k, float) and not math.isfinite(k) else k): finite(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v, depth + 1) for v in value]
    return value


def encode(value: Any) -> str:
    """Compact JSON of ``value``; anything JSON cannot encode (a stray datetime) becomes its str()."""
    try:
        return _strict(value)
    except ValueError:
        # "Out of range float values are not JSON compliant": mark them, then encode again.
        return _strict(finite(value))
