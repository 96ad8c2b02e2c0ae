"""Verify a stemtrace webhook in Python (standard library only).

Stemtrace-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with WEBHOOK_SECRET>

Pass the raw request body (bytes), before any JSON parsing.
"""

import hashlib
import hmac
import sys
import time

TOLERANCE_S = 300  # refuse signatures older (or newer) than 5 minutes: replays


def verify(secret: str, header: str, body: bytes, now: float | None = None) -> bool:
    """True when `header` is a valid Stemtrace-Signature of `body` made within TOLERANCE_S."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
        got = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > TOLERANCE_S:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, got)


if __name__ == "__main__":
    # python3 verify_signature.py SECRET HEADER BODY_FILE [NOW]: prints "ok" or "bad"
    secret, header, path = sys.argv[1:4]
    now = float(sys.argv[4]) if len(sys.argv) > 4 else None
    with open(path, "rb") as f:
        print("ok" if verify(secret, header, f.read(), now) else "bad")
