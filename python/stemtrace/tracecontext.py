"""W3C trace context at publish time (``stemtrace.traceparent``), so an HTTP request's trace and the
Celery trace it starts join in the OpenTelemetry export (the server's OTLP export: docs/otlp.md).

A task published outside any task (a web request handler, a script) carries the ``traceparent`` it
was published under, on its ``published`` event, from the first of:

1. the message headers, when the caller put one there: ``add.apply_async(args, headers={"traceparent": tp})``
   (OpenTelemetry's Celery instrumentation also writes it there);
2. an enclosing ``with stemtrace.traceparent(request.headers.get("traceparent")):`` block;
3. the current OpenTelemetry span, when the ``opentelemetry`` package is installed (optional).

Tasks published from inside a task take their parent from the task graph instead, so nothing is
read for them. Invalid values (not W3C's ``version-traceid-parentid-flags`` in lowercase hex) are ignored.
"""
from __future__ import annotations

import contextvars
import logging
import re
from contextlib import contextmanager
from typing import Any, Iterator, Optional

log = logging.getLogger("stemtrace")

#: The message header (and the W3C HTTP header) that carries it.
HEADER = "traceparent"

_PATTERN = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[ -~]*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

_current: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("stemtrace_traceparent", default=None)

try:  # optional: only read when the application has OpenTelemetry installed
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None


def valid(value: Any) -> Optional[str]:
    """``value`` when it is a valid W3C ``traceparent``, else None."""
    if type(value) is not str or len(value) > 512:
        return None
    m = _PATTERN.match(value)
    if m is None:
        return None
    version, trace_id, span_id, _flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return value


@contextmanager
def traceparent(value: Optional[str]) -> Iterator[Optional[str]]:
    """Tasks published inside the block (outside any task) carry ``value``, e.g. the ``traceparent``
    header of the HTTP request being handled. None or an invalid value changes nothing (logged at debug)."""
    checked = valid(value)
    if value is not None and checked is None:
        log.debug("stemtrace: ignoring an invalid traceparent %r", value)
    token = _current.set(checked) if checked is not None else None
    try:
        yield checked
    finally:
        if token is not None:
            _current.reset(token)


def current_traceparent() -> Optional[str]:
    """The ``traceparent`` set by an enclosing ``traceparent()`` block, if any."""
    return _current.get()


def from_opentelemetry() -> Optional[str]:
    """The current OpenTelemetry span as a ``traceparent``; None without the package or a valid span."""
    if _otel_trace is None:
        return None
    try:
        ctx = _otel_trace.get_current_span().get_span_context()
        if not ctx.is_valid:
            return None
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    except Exception:  # never into Celery
        log.debug("stemtrace: could not read the OpenTelemetry context", exc_info=True)
        return None


def incoming(headers: Any) -> Optional[str]:
    """The ``traceparent`` a publish outside any task was made under (the module docstring's order)."""
    if isinstance(headers, dict):
        found = valid(headers.get(HEADER))
        if found is not None:
            return found
    return _current.get() or from_opentelemetry()
