"""Stage A of the producer: Celery's signal arguments → a plain record in the recorder's shape.

Runs inside Celery's signal dispatch, so it only copies what it needs (no serialization, no I/O);
``mapping`` turns the record into a wire event later, in the sender thread.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
import traceback as _tb
from typing import Any, Dict, Optional

from .mapping import trace_key
from .trace import TRACE_HEADER, current_trace

#: This process's pid, refreshed after fork (os.getpid() is a system call on every signal otherwise).
PID = {"pid": os.getpid()}
os.register_at_fork(after_in_child=lambda: PID.__setitem__("pid", os.getpid()))

#: The worker node name of this process (set by celeryd_init in the worker main process and
#: inherited by pool children through fork); None in clients.
NODE: Dict[str, Optional[str]] = {"name": None}

_REQUEST_FIELDS = ("id", "retries", "root_id", "parent_id", "group", "group_index", "eta", "expires",
                   "chain", "chord", "callbacks", "errbacks", "is_eager", "delivery_info", "hostname")
#: After the start, the server already knows the task's links: only the attempt is needed.
_ATTEMPT_FIELDS = ("id", "retries", "delivery_info", "is_eager")


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (_dt.datetime, _dt.date)) else value


def qualified_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def exception_info(exc: Any) -> Optional[Dict[str, str]]:
    if exc is None:
        return None
    if isinstance(exc, BaseException):
        return {"type": qualified_name(exc), "message": str(exc)}
    return {"type": type(exc).__name__, "message": str(exc)}


def base(signal: str, task_id: Optional[str], task_name: Optional[str]) -> Dict[str, Any]:
    return {"signal": signal, "ts": time.time(), "pid": PID["pid"], "nodename": NODE["name"],
            "task_id": task_id, "task_name": task_name}


def context_dict(req: Any, full: bool = True) -> Dict[str, Any]:
    """The fields of a task's request Context that the mapping reads (copied: Celery mutates chain)."""
    out = {name: getattr(req, name, None) for name in (_REQUEST_FIELDS if full else _ATTEMPT_FIELDS)}
    if full:
        chain = out.get("chain")
        if chain:
            out["chain"] = list(chain)
        if out.get("eta") is not None:
            out["eta"] = _iso(out["eta"])
        if out.get("expires") is not None:
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


def publish(sender: Any, body: Any, headers: Dict[str, Any], routing_key: Any, current: Any) -> Dict[str, Any]:
    """before_task_publish. Writes the trace header into the outgoing message."""
    args, kwargs, embed = (body if isinstance(body, (tuple, list)) and len(body) == 3 else (None, None, None))
    req = getattr(current, "request", None) if current is not None else None
    publisher_id = getattr(req, "id", None) if req is not None and not getattr(req, "called_directly", True) else None
    trace = trace_key(headers, embed if isinstance(embed, dict) else None, request_trace(req) if publisher_id else None, current_trace())
    headers[TRACE_HEADER] = trace
    rec = base("before_task_publish", headers.get("id"), headers.get("task") or sender)
    rec.update(headers=dict(headers), body={"args": args, "kwargs": kwargs, "embed": embed}, routing_key=routing_key,
               publishing_task={"id": publisher_id} if publisher_id else None, trace_id=trace)
    return rec


def received(request: Any) -> Dict[str, Any]:
    request_dict = getattr(request, "request_dict", None) or {}
    payload = getattr(request, "_payload", None)
    embed = payload[2] if isinstance(payload, (tuple, list)) and len(payload) == 3 else None
    rec = base("task_received", request.id, request.name)
    rec["request"] = {
        "id": request.id, "root_id": request_dict.get("root_id"), "parent_id": request_dict.get("parent_id"),
        "group": request_dict.get("group"), "group_index": request_dict.get("group_index"),
        "retries": request_dict.get("retries"), "eta": _iso(getattr(request, "eta", None)),
        "expires": _iso(getattr(request, "expires", None)), "delivery_info": dict(request.delivery_info or {}),
        "embed": embed,
    }
    rec["trace_id"] = request_dict.get(TRACE_HEADER) or trace_key(
        {"id": request.id, "root_id": request_dict.get("root_id"), "group": request_dict.get("group")}, embed, None, None)
    return rec


def task_signal(signal: str, task: Any, task_id: Optional[str] = None, full: bool = True) -> Dict[str, Any]:
    """A signal fired with the task object as sender (prerun, success, failure, retry, postrun, revoked)."""
    req = getattr(task, "request", None)
    rec = base(signal, task_id or getattr(req, "id", None), getattr(task, "name", None))
    if req is not None and getattr(req, "id", None) == rec["task_id"]:
        rec["request"] = context_dict(req, full)
        rec["trace_id"] = request_trace(req)
    return rec


def einfo_traceback(einfo: Any, tb: Any) -> Optional[str]:
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
    headers = getattr(message, "headers", None)
    return dict(headers) if isinstance(headers, dict) else {}
