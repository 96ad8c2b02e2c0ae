"""Scrubbing and truncation of args, kwargs, results and messages before they leave the process.

Keys are matched on their normalized words (``api_key`` → ``api``, ``key``; ``X-Auth-Token`` →
``x``, ``auth``, ``token``), Sentry-style, so ``password`` and ``api_key`` are caught while
``author`` (not ``auth``) and ``max_tokens`` (``tokens``, a count) are not.
"""
from __future__ import annotations

import re
from typing import Any, FrozenSet, Iterable

FILTERED = "[Filtered]"

#: Whole words that make a key sensitive wherever they appear in it.
SENSITIVE_WORDS: FrozenSet[str] = frozenset(
    {
        "password", "passwd", "pwd", "secret", "token", "auth", "authorization", "credential",
        "credentials", "cookie", "session", "sessionid", "csrf", "xsrf", "jwt", "bearer", "apikey",
        "privatekey", "ssn", "cvv", "cvc", "pin", "iban", "signature", "dsn",
    }
)
#: Adjacent word pairs that are sensitive together but not alone (``api_key`` yes, ``key`` no).
SENSITIVE_PAIRS: FrozenSet[tuple] = frozenset(
    {("api", "key"), ("private", "key"), ("secret", "key"), ("access", "key"), ("credit", "card"),
     ("card", "number"), ("access", "token"), ("refresh", "token"), ("client", "secret")}
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^a-z0-9]+")


def key_words(key: str) -> list:
    """Splits a key into lower-case words: ``apiKey`` and ``API-KEY`` both give ``['api', 'key']``."""
    return [w for w in _SPLIT.split(_CAMEL.sub("_", key).lower()) if w]


def is_sensitive(key: Any, extra: Iterable[str] = (), safe: Iterable[str] = ()) -> bool:
    """True when ``key`` names a secret. ``extra`` adds whole keys or words; ``safe`` exempts keys."""
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    if lowered in safe:
        return False
    if lowered in extra:
        return True
    words = key_words(key)
    joined = "".join(words)
    if joined in SENSITIVE_WORDS or any(w in SENSITIVE_WORDS or w in extra for w in words):
        return True
    return any((a, b) in SENSITIVE_PAIRS for a, b in zip(words, words[1:]))


def truncate_text(text: str, cap: int) -> str:
    """Cuts ``text`` to ``cap`` characters and says how much was dropped."""
    if cap <= 0 or len(text) <= cap:
        return text
    return f"{text[:cap]}…[truncated {len(text) - cap} chars]"


class Scrubber:
    """Turns any value into JSON-safe data with secrets masked and large values truncated."""

    def __init__(self, enabled: bool = True, extra: Iterable[str] = (), safe: Iterable[str] = (), cap: int = 10_000) -> None:
        self.enabled = enabled
        self.extra = frozenset(k.lower() for k in extra)
        self.safe = frozenset(k.lower() for k in safe)
        self.cap = cap

    def __call__(self, value: Any) -> Any:
        return self._clean(value, 0)

    def _clean(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return truncate_text(value, self.cap)
        if depth > 8:
            return {"__repr__": truncate_text(repr(value), 200)}
        if isinstance(value, dict):
            out = {}
            for i, (k, v) in enumerate(value.items()):
                if i >= 200:
                    out["…"] = f"[truncated {len(value) - 200} more keys]"
                    break
                key = k if isinstance(k, str) else repr(k)
                out[key] = FILTERED if self.enabled and is_sensitive(key, self.extra, self.safe) else self._clean(v, depth + 1)
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
            cleaned = [self._clean(v, depth + 1) for v in items[:200]]
            if len(items) > 200:
                cleaned.append(f"…[truncated {len(items) - 200} more items]")
            return cleaned
        return {"__repr__": truncate_text(_safe_repr(value), self.cap)}

    def text(self, value: Any) -> str:
        """A message or traceback, truncated."""
        return truncate_text(value if isinstance(value, str) else _safe_repr(value), self.cap * 10)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must never break the task
        return f"<unrepresentable {type(value).__name__}>"
