"""Stage B of the producer: a plain signal record (see ``extract``) → a wire event (DESIGN.md, v1).

Pure: the live producer and the converter of recorded fixtures (``recordings``) share it, so the
server's tests run on exactly what the producer sends.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
from json.encoder import encode_basestring_ascii as _esc
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .jsonsafe import encode as _encode_valid
from .scrub import Scrubber
from .trace import TRACE_HEADER

Record = Dict[str, Any]
Event = Dict[str, Any]
#: A hot event already written as JSON (``fastpath``): everything after ``"seq":N,``, or that
#: without its closing brace plus the (key, value) pairs still to be scrubbed.
Fragment = Union[str, Tuple[str, Tuple[Tuple[str, Any], ...]]]

#: Events → compact JSON, the same encoder for the events of ``__call__`` and the values a fragment
#: leaves to the sender thread. Anything JSON cannot encode (a stray datetime) becomes its str();
#: NaN and ±Infinity become ``{"__float__": "NaN"}`` (``jsonsafe``): the JSON is always valid.
encode = _encode_valid

TASK_TYPES = {
    "before_task_publish": "published",
    "task_received": "received",
    "task_prerun": "started",
    "task_success": "succeeded",
    "task_failure": "failed",
    "task_retry": "retried",
    "task_postrun": "postrun",
    "task_revoked": "revoked",
    "task_unknown": "unknown",
    "task_rejected": "rejected",
    "task_internal_error": "internal_error",
}
WORKER_TYPES = {
    "worker_ready": "online",
    "heartbeat_sent": "heartbeat",
    "worker_shutting_down": "shutting_down",
    "worker_shutdown": "offline",
}
#: Only these carry the embed reliably: request.chain is popped before success/postrun (CELERY.md 05).
_ANNOUNCING = frozenset({"published", "received", "started"})
#: Events whose linking fields come from the message headers rather than a request Context.
_FROM_HEADERS = frozenset({"published", "unknown", "rejected"})
#: Events that describe a message (and so carry its links); outcomes of an attempt do not repeat them.
_DESCRIBING = frozenset({"published", "received", "unknown", "rejected", "revoked", "internal_error"})
#: (request/header key, event field) of the linking fields.
_LINKS = (("root_id", "root_id"), ("parent_id", "parent_id"), ("group", "group_id"), ("group_index", "group_index"))
_POSTRUN_STATES = {"SUCCESS", "FAILURE", "RETRY", "REJECTED", "IGNORED"}


def scalar(value: Any) -> Optional[str]:
    """The JSON of a str, None, bool, int or finite float exactly as ``encode`` writes it; None
    for anything else."""
    t = type(value)
    if t is str:
        return _esc(value)
    if value is None:
        return "null"
    if t is int:
        return int.__repr__(value)
    if t is bool:
        return "true" if value else "false"
    if t is float and math.isfinite(value):
        return float.__repr__(value)
    return None


def _exception_type(name: Any) -> str:
    """``builtins.ValueError`` → ``ValueError``; other modules stay qualified."""
    text = str(name)
    return text[len("builtins."):] if text.startswith("builtins.") else text


def _iso(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return str(value)


def _signature_name(sig: Any) -> Optional[str]:
    return sig.get("task") if isinstance(sig, dict) else None


def _options(sig: Any) -> Dict[str, Any]:
    opts = sig.get("options") if isinstance(sig, dict) else None
    return opts if isinstance(opts, dict) else {}


def _announced(sig: Any) -> Optional[Dict[str, Any]]:
    name, task_id = _signature_name(sig), _options(sig).get("task_id")
    return {"task_id": task_id, "name": name} if name and task_id else None


def chord_body(body: Any) -> Tuple[Optional[Dict[str, Any]], List[Dict[str, Any]]]:
    """A chord's body → (its callback, the chain steps that run after the callback).

    A chord followed by more chain steps has a ``celery.chain`` body without a task id of its own:
    the callback is its first task and the others follow it (recorded: 25a, 25b). A plain callback
    carries what follows it in ``options.chain`` (reversed, as in ``embed.chain``; 25c, 25d)."""
    if _signature_name(body) == "celery.chain":
        kwargs = body.get("kwargs") if isinstance(body.get("kwargs"), dict) else {}
        tasks = kwargs.get("tasks") or []
        if not isinstance(tasks, list) or not tasks:
            return None, []
        # kwargs.tasks is in execution order; chain_steps reads the reversed embed order.
        return _announced(tasks[0]), chain_steps(list(reversed(tasks[1:])))
    return _announced(body), chain_steps(_options(body).get("chain"))


def chain_steps(embedded_chain: Any) -> List[Dict[str, Any]]:
    """``embed.chain`` (REVERSED in the message: last element = next step) → steps in execution order."""
    if not isinstance(embedded_chain, list):
        return []
    steps: List[Dict[str, Any]] = []
    for sig in reversed(embedded_chain):
        name = _signature_name(sig)
        opts = _options(sig)
        kwargs = sig.get("kwargs") if isinstance(sig, dict) and isinstance(sig.get("kwargs"), dict) else {}
        if name == "celery.group":
            tasks = [{"task_id": _options(t).get("task_id"), "name": _signature_name(t)} for t in kwargs.get("tasks") or []]
            steps.append({"group_id": opts.get("task_id"), "tasks": [t for t in tasks if t["task_id"] and t["name"]]})
        elif name == "celery.chord":
            # The chord signature's own task_id is never a real task (09a); its group id is learned later.
            header = kwargs.get("header") or {}
            header_tasks = (header.get("kwargs") or {}).get("tasks") or [] if isinstance(header, dict) else []
            callback, after = chord_body(kwargs.get("body") or {})
            tasks = [{"task_id": _options(t).get("task_id"), "name": _signature_name(t)} for t in header_tasks]
            steps.append({"group_id": None, "tasks": [t for t in tasks if t["task_id"] and t["name"]], "chord_callback": callback})
            steps.extend(after)  # the callback's own followers run after it: the chain goes on from there
        elif name and opts.get("task_id"):
            step: Dict[str, Any] = {"task_id": opts["task_id"], "name": name}
            if opts.get("group_id"):
                step["group_id"] = opts["group_id"]
                step["group_index"] = opts.get("group_index")
            steps.append(step)
    return steps


def linked(signatures: Any) -> Optional[List[Dict[str, Any]]]:
    """Link callbacks / errbacks: names (Celery 5.2 gives them no id until they are published)."""
    if not isinstance(signatures, list) or not signatures:
        return None
    out = []
    for sig in signatures:
        name = _signature_name(sig)
        if name:
            out.append({"name": name, "task_id": _options(sig).get("task_id")})
    return out or None


def _outer_group(callback: Any) -> Optional[str]:
    """The outermost group a chord callback belongs to: a chord inside another chord's header has a
    callback that is itself a member (``options.group_id``) whose own chord may be a member again."""
    found = None
    for _ in range(32):  # nesting depth; a cycle is impossible in a real canvas
        if not isinstance(callback, dict):
            break
        if _signature_name(callback) == "celery.chain":
            tasks = (callback.get("kwargs") or {}).get("tasks") if isinstance(callback.get("kwargs"), dict) else None
            callback = tasks[0] if isinstance(tasks, list) and tasks else None
            continue
        opts = _options(callback)
        found = opts.get("group_id") or found
        callback = opts.get("chord")
    return found


def trace_key(headers: Dict[str, Any], embed: Optional[Dict[str, Any]], publishing_trace: Optional[str], context_trace: Optional[str]) -> str:
    """The trace a published message belongs to (DESIGN.md "The trace key"), in rule order. Of the
    groups a message belongs to, the outermost: a chord whose header members are chains holding
    chords is one workflow (25e), though the client publishes each member chain on its own."""
    if publishing_trace:
        return publishing_trace
    if context_trace:
        return context_trace
    embed = embed or {}
    outer = _outer_group(embed.get("chord"))
    if outer:
        return outer
    if headers.get("group"):
        return headers["group"]
    for sig in embed.get("chain") or []:
        opts = _options(sig)
        group_id = opts.get("group_id")
        if not group_id and _signature_name(sig) == "celery.chord":
            kwargs = sig.get("kwargs") if isinstance(sig.get("kwargs"), dict) else {}
            group_id = _outer_group(kwargs.get("body"))
        if group_id:
            return group_id
    return headers.get("root_id") or headers.get("id")


class IdPrefix:
    """The per-process half of event ids: 96 random bits (a uuid4 per event costs 5 µs); the other
    half is the event's seq, which the sender numbers per process. A forked child draws a new
    prefix (its seq starts again at 1), so ids never repeat across processes."""

    def __init__(self) -> None:
        self.value = self._draw()
        os.register_at_fork(after_in_child=self._renew)

    @staticmethod
    def _draw() -> str:
        return os.urandom(12).hex() + "-"

    def _renew(self) -> None:
        self.value = self._draw()


def plain(value: Any, cap: int) -> Optional[str]:
    """The JSON of a value the scrubber would return as it is (None, scalars, short strings,
    empty containers); None when the scrubber has work to do."""
    t = type(value)
    if t is str:
        return _esc(value) if cap <= 0 or len(value) <= cap else None
    if (t is list or t is tuple) and not value:
        return "[]"
    if t is dict and not value:
        return "{}"
    return scalar(value)


class Mapper:
    """Maps records to events, stamping the event id and per-process sequence."""

    def __init__(self, scrub: Scrubber, capture_args: bool = True, capture_result: bool = True,
                 new_id: Optional[Callable[[], str]] = None) -> None:
        self.scrub = scrub
        self.capture_args = capture_args
        self.capture_result = capture_result
        #: Ids from a callable (the recordings' deterministic ones), else prefix + seq.
        self.new_id = new_id
        self._prefix = IdPrefix() if new_id is None else None

    def __call__(self, rec: Record, seq: int) -> Optional[Event]:
        signal = rec.get("signal")
        if signal in TASK_TYPES:
            return self._task(rec, TASK_TYPES[signal], seq)
        if signal in WORKER_TYPES:
            return self._worker(rec, WORKER_TYPES[signal], seq)
        return None

    # ---- the hot path's events (fastpath), already JSON ----

    def finish(self, fragment: Fragment, seq: int) -> str:
        """A fragment (``fastpath``) → the event's JSON with its id and sequence, in the sender thread;
        the values it left (arguments, results) are scrubbed here, as ``__call__`` scrubs them."""
        if type(fragment) is str:
            tail = fragment
        else:
            head, later = fragment
            tail = head + "".join(f',"{key}":{encode(self.scrub(value))}' for key, value in later) + "}"
        if self._prefix is not None:
            return f'{{"v":1,"id":"{self._prefix.value}{seq}","seq":{seq},{tail}'  # the prefix is hex
        event_id = self.new_id()
        return f'{{"v":1,"id":{scalar(event_id) or encode(event_id)},"seq":{seq},{tail}'

    def _id(self, seq: int) -> str:
        return f"{self._prefix.value}{seq}" if self._prefix is not None else self.new_id()

    def _base(self, rec: Record, kind: str, type_: str, seq: int) -> Event:
        return {"v": 1, "id": self._id(seq), "kind": kind, "type": type_, "ts": rec["ts"], "seq": seq,
                "host": rec.get("nodename"), "pid": rec.get("pid")}

    def _task(self, rec: Record, type_: str, seq: int) -> Optional[Event]:
        request = rec.get("request")
        if not isinstance(request, dict):
            request = {}
        request_dict = request.get("request_dict")
        if not isinstance(request_dict, dict):
            request_dict = None
        message = rec.get("message")
        if not isinstance(message, dict):
            message = {}
        headers = rec.get("headers") or message.get("headers")
        if not isinstance(headers, dict):
            headers = {}
        # Where the linking fields are: the message headers (publish, unknown, rejected, and the
        # worker's received, whose request_dict is the headers) or the task's request Context.
        if type_ in _FROM_HEADERS:
            src = headers
        elif type_ == "received" and request_dict is not None:
            src = request_dict
        else:
            src = request
        task_id = rec.get("task_id") or src.get("id") or request.get("id")
        if not task_id:
            return None  # e.g. a rejected message without an id: nothing to attach it to
        ev: Event = {"v": 1, "id": self._id(seq), "kind": "task", "type": type_, "ts": rec["ts"], "seq": seq,
                     "host": rec.get("nodename"), "pid": rec.get("pid"), "task_id": task_id,
                     "name": rec.get("task_name") or headers.get("task") or request.get("name") or request.get("task")}
        trace = rec.get("trace_id")
        if trace:
            ev["trace_id"] = trace
        retries = src.get("retries")
        if retries is None and request_dict is not None:
            retries = request_dict.get("retries")
        if retries is not None:
            ev["retries"] = retries
        delivery = request.get("delivery_info") or message.get("delivery_info") or (request_dict or {}).get("delivery_info")
        if isinstance(delivery, dict) and delivery:
            if delivery.get("redelivered"):
                ev["redelivered"] = True
            if delivery.get("is_eager"):
                ev["eager"] = True
            if delivery.get("routing_key"):
                ev["queue"] = delivery["routing_key"]
        if request.get("is_eager"):
            ev["eager"] = True
        eager = ev.get("eager", False)
        if type_ == "published":
            if rec.get("routing_key"):
                ev["queue"] = rec["routing_key"]
            publisher = rec.get("publishing_task")
            if isinstance(publisher, dict) and publisher.get("id"):
                ev["publisher_task_id"] = publisher["id"]
            if rec.get("traceparent"):
                ev["traceparent"] = rec["traceparent"]
        # Links (root, parent, group, eta...) go out with the events that first describe a message;
        # the outcome events of the same attempt only need the attempt (task_id + retries).
        if type_ in _DESCRIBING or (type_ == "started" and eager):
            for key, field in _LINKS:
                value = src.get(key)
                if value is not None:
                    ev[field] = value
            for key in ("eta", "expires"):
                if src.get(key):
                    ev[key] = _iso(src[key])
        if type_ in _ANNOUNCING and (type_ != "started" or eager):
            self._announce(rec, type_, request, ev)
        self._outcome(rec, type_, ev)
        return ev

    def _announce(self, rec: Record, type_: str, request: Dict[str, Any], ev: Event) -> None:
        """Chain steps, chord callback, link callbacks and the arguments, from the embed/body."""
        if type_ == "published":
            body = rec.get("body") or {}
            embed = body.get("embed")
        else:
            body = None
            embed = request.get("embed")
        if not isinstance(embed, dict):
            embed = request  # a request Context has chain/chord/callbacks/errbacks at the top level
        chord = embed.get("chord")
        if isinstance(chord, dict):
            callback, after = chord_body(chord)
            if callback:
                ev["chord_callback_id"] = callback["task_id"]
                ev["chord_callback_name"] = callback["name"]
                if after:
                    ev["chord_callback_chain"] = after
        if embed.get("chain"):
            steps = chain_steps(embed["chain"])
            if steps:
                ev["chain"] = steps
        callbacks = linked(embed.get("callbacks"))
        if callbacks:
            ev["callbacks"] = callbacks
        errbacks = linked(embed.get("errbacks"))
        if errbacks:
            ev["errbacks"] = errbacks
        if not self.capture_args:
            return
        # Arguments travel once, with the publish. A received message without the trace header was
        # published by an uninstrumented client: the worker sends them instead. Eager runs have
        # neither publish nor received: their start sends them.
        if body is not None:
            args, kwargs = body.get("args"), body.get("kwargs")
        elif type_ == "received":
            request_dict = request.get("request_dict") or {}
            if request_dict.get(TRACE_HEADER):
                return
            args = request.get("args", request_dict.get("args"))
            kwargs = request.get("kwargs", request_dict.get("kwargs"))
        else:
            args = rec.get("args", request.get("args"))
            kwargs = rec.get("kwargs", request.get("kwargs"))
        if args is not None:
            ev["args"] = self.scrub(args)
        if kwargs is not None:
            ev["kwargs"] = self.scrub(kwargs)

    def _outcome(self, rec: Record, type_: str, ev: Event) -> None:
        if type_ == "succeeded":
            if self.capture_result:
                ev["result"] = self.scrub(rec.get("result"))
            if rec.get("state") == "SUCCESS":  # the producer's merged success + postrun
                ev["state"] = "SUCCESS"
            if rec.get("runtime_s") is not None:
                ev["runtime_ms"] = round(rec["runtime_s"] * 1000, 3)
        elif type_ in ("failed", "internal_error", "unknown", "rejected"):
            exc = rec.get("exception")
            if isinstance(exc, dict) and exc.get("type"):
                ev["exception"] = {"type": _exception_type(exc["type"]), "message": self.scrub.text(exc.get("message") or "")}
            tb = rec.get("traceback")
            if tb:
                ev["traceback"] = self.scrub.text(tb)
        elif type_ == "retried":
            reason = rec.get("reason") if isinstance(rec.get("reason"), dict) else {}
            exc = reason.get("exc")
            if isinstance(exc, dict) and exc.get("type"):
                ev["exception"] = {"type": _exception_type(exc["type"]), "message": self.scrub.text(exc.get("message") or "")}
            if reason.get("message"):
                ev["reason"] = self.scrub.text(reason["message"])
            when = reason.get("when")
            if isinstance(when, (int, float)):
                ev["next_eta"] = _dt.datetime.fromtimestamp(rec["ts"] + when, _dt.timezone.utc).isoformat()
            elif when:
                ev["next_eta"] = _iso(when)
        elif type_ == "postrun":
            state = rec.get("state")
            ev["state"] = state if state in _POSTRUN_STATES else None
            if rec.get("runtime_s") is not None:
                ev["runtime_ms"] = round(rec["runtime_s"] * 1000, 3)
        elif type_ == "revoked":
            ev["terminated"] = bool(rec.get("terminated"))
            ev["expired"] = bool(rec.get("expired"))
            if isinstance(rec.get("signum"), int):
                ev["signum"] = rec["signum"]

    def _worker(self, rec: Record, type_: str, seq: int) -> Optional[Event]:
        if not rec.get("nodename"):
            return None
        ev = self._base(rec, "worker", type_, seq)
        for key in ("registered", "concurrency", "pool", "queues", "sw_ver", "active", "freq"):
            if rec.get(key) is not None:
                ev[key] = rec[key]
        if type_ == "shutting_down":
            how = str(rec.get("how") or "").lower()
            ev["how"] = how if how in ("warm", "cold") else None
        return ev
