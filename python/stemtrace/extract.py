"""Stage A of the producer: Celery's signal arguments → a plain record in the recorder's shape
(test/fixtures/celery-5.2.6, CELERY.md §0), which ``mapping`` (stage B) turns into a wire event.

Runs inside Celery's signal dispatch, on the task's hot path: it only takes references to what
Celery hands over (no serialization, no I/O, no formatting) and copies the one thing Celery mutates
later (the embedded chain, popped before ``task_success``, CELERY.md 05). Formatting happens in
``mapping``, in the sender thread, batched.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
import traceback as _tb
from typing import Any, Dict, Optional, Tuple

from celery._state import get_current_task

from .mapping import trace_key
from .trace import TRACE_HEADER
from .trace import _current as _current_trace  # the contextvar itself: one call fewer per publish
from .tracecontext import incoming as incoming_traceparent

#: This process's pid, refreshed after fork (``os.getpid()`` would be a system call per signal).
PID = {"pid": os.getpid()}
os.register_at_fork(after_in_child=lambda: PID.__setitem__("pid", os.getpid()))

#: Whether a task has started in this process (set by the prerun handler). Until one has, no publish
#: can happen inside a task body, and ``publish_context`` skips Celery's thread-local task stack
#: (a third of a client's cost per publish); from then on it asks the stack.
TASKS_STARTED = {"any": False}

#: The worker node name of this process (set by celeryd_init in the worker main process and
#: inherited by pool children through fork); None in clients.
NODE: Dict[str, Optional[str]] = {"name": None}

#: What a started event needs of ``task.request`` when the worker already sent ``received``.
_ATTEMPT_FIELDS = ("id", "retries", "delivery_info", "is_eager")
#: Everything the mapping can read from a request Context (eager runs have no publish/received).
_REQUEST_FIELDS = _ATTEMPT_FIELDS + ("root_id", "parent_id", "group", "group_index", "eta", "expires",
                                     "chain", "chord", "callbacks", "errbacks", "hostname")

_time = time.time


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (_dt.datetime, _dt.date)) else value


def qualified_name(exc: BaseException) -> str:
    """``ValueError`` for builtins, ``module.Class`` otherwise."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def exception_info(exc: Any) -> Optional[Dict[str, str]]:
    """``{type, message}`` of an exception (or of anything Celery passes as one)."""
    if exc is None:
        return None
    if isinstance(exc, BaseException):
        return {"type": qualified_name(exc), "message": str(exc)}
    return {"type": type(exc).__name__, "message": str(exc)}


def base(signal: str, task_id: Optional[str], task_name: Optional[str]) -> Dict[str, Any]:
    """The fields every record has: which signal, when, where."""
    return {"signal": signal, "ts": _time(), "pid": PID["pid"], "nodename": NODE["name"],
            "task_id": task_id, "task_name": task_name}


def context_dict(req: Any, full: bool = True) -> Dict[str, Any]:
    """The fields of a task's request Context that the mapping reads. ``full=False``: only the
    attempt (id, retries, delivery); the links already went out with published/received."""
    if not full:
        return {"id": req.id, "retries": req.retries, "delivery_info": req.delivery_info, "is_eager": req.is_eager}
    out = {name: getattr(req, name, None) for name in _REQUEST_FIELDS}
    if out["chain"]:
        out["chain"] = list(out["chain"])  # Celery pops the next step off this very list
    out["eta"] = _iso(out["eta"])
    out["expires"] = _iso(out["expires"])
    return out


def request_trace(req: Any) -> Optional[str]:
    """The trace a running task belongs to: its carried header, else derived like the publisher would."""
    if req is None:
        return None
    carried = getattr(req, TRACE_HEADER, None)
    if carried:
        return carried
    task_id = getattr(req, "id", None)
    if not task_id:
        return None
    return trace_key({"id": task_id, "root_id": getattr(req, "root_id", None), "group": getattr(req, "group", None)},
                     {"chain": getattr(req, "chain", None)}, None, None)


def publish_context(body: Any, headers: Dict[str, Any]) -> Tuple[Any, Any, Any, Optional[str], str]:
    """before_task_publish: the body's (args, kwargs, embed), the publishing task's id and the trace
    key (DESIGN.md "The trace key"), which it writes into the outgoing message's headers, so every
    process that sees this task agrees on its trace."""
    if isinstance(body, (tuple, list)) and len(body) == 3:
        args, kwargs, embed = body
    else:
        args = kwargs = embed = None
    # The task inside whose body this publish happens, if any.
    task = get_current_task() if TASKS_STARTED["any"] else None
    req = task.request if task is not None else None
    publisher_id = req.id if req is not None and not req.called_directly else None
    context = _current_trace.get()
    if publisher_id or context or headers.get("group") or (isinstance(embed, dict) and embed.get("chain")):
        trace = trace_key(headers, embed if isinstance(embed, dict) else None,
                          request_trace(req) if publisher_id else None, context)
    else:
        trace = headers.get("root_id") or headers.get("id")  # trace_key's last rule: a fresh task, the common case
    headers[TRACE_HEADER] = trace
    return args, kwargs, embed, publisher_id, trace


def publish(sender: Any, body: Any, headers: Dict[str, Any], routing_key: Any) -> Dict[str, Any]:
    """before_task_publish → its record (``publish_context`` writes the trace header)."""
    args, kwargs, embed, publisher_id, trace = publish_context(body, headers)
    tp = None if publisher_id else incoming_traceparent(headers)
    return publish_record(_time(), sender, headers, args, kwargs, embed, routing_key, publisher_id, trace, tp)


def publish_record(ts: float, sender: Any, headers: Dict[str, Any], args: Any, kwargs: Any, embed: Any,
                   routing_key: Any, publisher_id: Optional[str], trace: str,
                   traceparent: Optional[str] = None) -> Dict[str, Any]:
    """The record of a publish whose context ``publish_context`` worked out (``traceparent``: the W3C
    trace a publish outside any task was made under, see ``stemtrace.traceparent``)."""
    rec = {"signal": "before_task_publish", "ts": ts, "pid": PID["pid"], "nodename": NODE["name"],
           "task_id": headers.get("id"), "task_name": headers.get("task") or sender,
           # References, not copies: Celery builds these per message and never changes them again.
           "headers": headers, "body": {"args": args, "kwargs": kwargs, "embed": embed}, "routing_key": routing_key,
           "publishing_task": {"id": publisher_id} if publisher_id else None, "trace_id": trace}
    if traceparent:
        rec["traceparent"] = traceparent
    return rec


def received(request: Any) -> Dict[str, Any]:
    """task_received (worker main process): the message headers as ``request.request_dict``."""
    request_dict = request.request_dict
    payload = getattr(request, "_payload", None)
    embed = payload[2] if isinstance(payload, (tuple, list)) and len(payload) == 3 else None
    if embed and embed.get("chain"):
        # With -P solo the tracer pops the next step off this list before the sender maps it.
        embed = dict(embed, chain=list(embed["chain"]))
    trace = request_dict.get(TRACE_HEADER) or trace_key(request_dict, embed, None, None)
    return {"signal": "task_received", "ts": _time(), "pid": PID["pid"], "nodename": NODE["name"],
            "task_id": request.id, "task_name": request.name, "trace_id": trace,
            "request": {"id": request.id, "request_dict": request_dict, "embed": embed}}


def task_signal(signal: str, task: Any, task_id: Optional[str] = None, full: bool = True) -> Dict[str, Any]:
    """A signal fired with the task object as sender (prerun, success, failure, postrun)."""
    req = getattr(task, "request", None)
    rec = base(signal, task_id or getattr(req, "id", None), getattr(task, "name", None))
    # In the worker main process (WorkerLostError, hard time limit) sender.request is not this task's.
    if req is not None and getattr(req, "id", None) == rec["task_id"]:
        rec["request"] = context_dict(req, full)
        rec["trace_id"] = request_trace(req)
    return rec


def einfo_traceback(einfo: Any, tb: Any) -> Optional[str]:
    """The formatted traceback: ``einfo.traceback`` (always a string), else the traceback kwarg."""
    text = getattr(einfo, "traceback", None)
    if isinstance(text, str) and text:
        return text
    if isinstance(tb, str):
        return tb
    if tb is not None:
        try:
            return "".join(_tb.format_tb(tb))
        except Exception:
            return None
    return None


def message_headers(message: Any) -> Dict[str, Any]:
    """A kombu message's headers (task_unknown / task_rejected), copied."""
    headers = getattr(message, "headers", None)
    return dict(headers) if isinstance(headers, dict) else {}
