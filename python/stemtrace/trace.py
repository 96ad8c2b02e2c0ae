"""Request correlation: ``with stemtrace.trace("order-42"):`` puts every task published inside the
block (and everything they publish) in one trace."""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterator, Optional

#: The message header that carries the trace key from publisher to worker and on to children.
TRACE_HEADER = "stemtrace_trace_id"

_current: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("stemtrace_trace", default=None)


def current_trace() -> Optional[str]:
    """The trace id set by an enclosing ``trace()`` block, if any."""
    return _current.get()


@contextmanager
def trace(trace_id: str) -> Iterator[str]:
    """Groups every task published inside the block under ``trace_id`` (e.g. a request id)."""
    token = _current.set(str(trace_id))
    try:
        yield str(trace_id)
    finally:
        _current.reset(token)
