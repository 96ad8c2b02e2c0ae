"""The hot path: the four events every task sends (published, received, started, succeeded), written
as JSON straight from Celery's signal arguments, in the signal handler.

The general path builds a record (``extract``), keeps it in the queue and maps it in the sender
thread (``mapping``), then encodes the event dict. For these four events, in their common shape,
that costs several times more than writing the dozen fields they carry, and the records are what
the garbage collector keeps walking while they wait. A fragment is a str (or a str and the values
the scrubber still has to walk, which wait for the sender thread as before, so a handler's cost
does not grow with argument sizes). ``started`` and ``succeeded`` share the attempt's fields,
written once at prerun.

Every function here writes exactly what ``extract`` + ``Mapper.__call__`` would send (the tests
hold them to that on Celery's real objects) and returns None wherever that path would do more than
these fields (eager runs, chains, chords, callbacks, values of other types): the handler then takes
the general path. Ids and sequence numbers are added in the sender thread (``Mapper.finish``).

**Held events.** Where tasks start in the process that receives them (-P solo, threads), an
attempt's received and started are held (``FastPath.held``) instead of queued, and a task that
succeeds sends one event that stands for all three: ``succeeded`` with ``received_ts`` and
``started_ts`` (DESIGN.md; the server's ingest expands it back). A third of the events to write,
compress and send. Whatever is still held a flush interval later (a long task, an ETA, a task that
never starts) goes out as it would have (``FastPath.release``), as does an attempt that ends any
other way (``release_task``): holding delays an event by at most two flush intervals, never loses it.
"""
from __future__ import annotations

import os
from json.encoder import encode_basestring_ascii as _esc
from time import time_ns as _time_ns
from typing import Any, Dict, List, Optional, Tuple

from . import extract
from .mapping import Fragment, Mapper, plain, scalar, trace_key
from .trace import TRACE_HEADER

#: Attempts held at once (``FastPath.held``): far more than a worker's prefetch; past it, events go out unheld.
HELD_MAX = 4096

#: A held attempt: (task name, the attempt's JSON, received's ts and the message's links or None,
#: started's ts or None).
Held = Tuple[Any, str, Optional[str], Optional[str], Optional[str]]


#: What ``received`` returns for an event it holds (nothing to queue now).
HELD: Any = object()


class Unwritable(Exception):
    """A value this path does not write itself: the handler takes the general path."""


# Written inline where events are made (a call costs about as much as the work, in the busiest code):
# - ``ts``: the wall clock as seconds with 6 decimals, cut from ``time_ns()``'s digits
#   (``now = str(_time_ns())`` → ``{now[:-9]}.{now[-9:-3]}``): the same clock as ``time.time()``,
#   whose float the general path sends with ~7 decimals, a quarter of them float noise; printing a
#   float costs more than cutting a string.
# - the embed check: a message whose embed links other tasks (chain, chord, callbacks, errbacks), or
#   is not Celery's dict, goes to the general path, which writes those announcements.


def _j(value: Any) -> str:
    text = scalar(value)
    if text is None:
        raise Unwritable(type(value).__name__)
    return text


#: The JSON of task and queue names seen (few distinct values, written in every event).
_NAMES: Dict[str, str] = {}


def _name(value: Any) -> str:
    """The JSON of a task or queue name, each distinct one escaped once (use as
    ``_NAMES.get(value) or _name(value)``: the lookup alone is what most events pay)."""
    if type(value) is str and value:
        text = _NAMES[value] = _esc(value)
        if len(_NAMES) > 4096:
            _NAMES.clear()  # names made up per task: do not keep them all
        return text
    return _j(value or None)


def _links(get: Any, task_id: str, task_json: str) -> str:
    """root/parent/group and eta/expires (``get`` of the headers or the request dict), as ``_task``
    copies them for the describing events. ``task_json``: the task id's JSON, which a fresh task's
    root id repeats."""
    out = ""
    value = get("root_id")
    if value is not None:
        out = ',"root_id":' + (task_json if value == task_id else _esc(value) if type(value) is str else _j(value))
    value = get("parent_id")
    if value is not None:
        out += ',"parent_id":' + (_esc(value) if type(value) is str else _j(value))
    value = get("group")
    if value is not None:
        out += ',"group_id":' + (_esc(value) if type(value) is str else _j(value))
    value = get("group_index")
    if value is not None:
        out += ',"group_index":' + (int.__repr__(value) if type(value) is int else _j(value))
    value = get("eta")
    if value:
        if type(value) is not str:
            raise Unwritable("eta")  # mapping._iso's datetime and str() cases
        out += ',"eta":' + _esc(value)
    value = get("expires")
    if value:
        if type(value) is not str:
            raise Unwritable("expires")
        out += ',"expires":' + _esc(value)
    return out


class FastPath:
    """Writes the hot events with the mapper's options (capture flags, the scrubber's size cap)."""

    def __init__(self, mapper: Mapper) -> None:
        self.capture_args = mapper.capture_args
        self.capture_result = mapper.capture_result
        self.cap = mapper.scrub.cap
        self._node: Any = object()
        self._pid: Any = None
        self._where_json = ""
        #: task id → its held events (``Held``), from received or prerun to postrun in this process;
        #: prerun also reuses the attempt received wrote (no ``task.request`` walk, no writing).
        #: Only for a carried trace (prerun would read the same header). A forked child starts empty:
        #: the parent's held events are the parent's to send. Handlers and the sender thread both
        #: take entries with ``dict.pop``, atomic under the GIL, so each is sent exactly once.
        self.held: Dict[str, Held] = {}
        #: The keys held at the previous ``release``: still held now, they have waited a whole interval.
        self._seen: List[str] = []
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self.held.clear()
        self._seen = []

    def _where(self) -> str:
        """host and pid: written again only when the node name is learnt or the process forks."""
        node, pid = extract.NODE["name"], extract.PID["pid"]
        if node is not self._node or pid != self._pid:
            self._where_json = f',"host":{_j(node)},"pid":{_j(pid)}'
            self._node, self._pid = node, pid
        return self._where_json

    def _attempt(self, task_id: str, task_json: str, name: Any, trace: Any, retries: Any, delivery: Any) -> Optional[str]:
        """host, pid, task_id, name, trace_id, retries, redelivered and queue: what received, started
        and succeeded all write, in this order; None when the delivery says the run is eager or is
        not a dict (the general path decides)."""
        where = self._where_json if extract.NODE["name"] is self._node and extract.PID["pid"] == self._pid else self._where()
        out = f'{where},"task_id":{task_json},"name":' + (_NAMES.get(name) or _name(name))
        if trace:
            out += ',"trace_id":' + (task_json if trace == task_id else _esc(trace) if type(trace) is str else _j(trace))
        if retries is not None:
            out += ',"retries":' + (int.__repr__(retries) if type(retries) is int else _j(retries))
        if delivery:
            if type(delivery) is not dict or delivery.get("is_eager"):
                return None
            if delivery.get("redelivered"):
                out += ',"redelivered":true'
            queue = delivery.get("routing_key")
            if queue:
                out += ',"queue":' + (_NAMES.get(queue) or _name(queue))
        return out

    def _close(self, out: str, values: List[Tuple[str, Any]]) -> Fragment:
        """Values the scrubber returns as they are go in now; the others wait for ``finish``."""
        later = []
        for key, value in values:
            text = plain(value, self.cap)
            if text is None:
                later.append((key, value))
            else:
                out += f',"{key}":{text}'
        if later:
            return out, tuple(later)
        return out + "}"

    def _with_arguments(self, out: str, args: Any, kwargs: Any) -> Fragment:
        """``out`` with the args and kwargs that are present, closed."""
        if not args and not kwargs and type(args) in (tuple, list) and type(kwargs) is dict:
            return out + ',"args":[],"kwargs":{}}'  # what plain() writes for both, the common case
        return self._close(out, [(key, value) for key, value in (("args", args), ("kwargs", kwargs)) if value is not None])

    def published(self, headers: dict, args: Any, kwargs: Any, embed: Any, routing_key: Any,
                  name: Any, publisher_id: Any, trace: Any, traceparent: Optional[str] = None) -> Optional[Fragment]:
        """before_task_publish, as ``extract.publish`` + ``_task``/``_announce`` write it."""
        # The embed check, ts and _with_arguments' common case, inline (see "Written inline" above).
        if embed is not None and (not isinstance(embed, dict) or embed.get("chain") or embed.get("chord")
                                  or embed.get("callbacks") or embed.get("errbacks")):
            return None
        get = headers.get
        task_id = get("id")
        if type(task_id) is not str or not task_id:
            return None
        task_json = _esc(task_id)
        now = str(_time_ns())
        where = self._where_json if extract.NODE["name"] is self._node and extract.PID["pid"] == self._pid else self._where()
        out = f'"kind":"task","type":"published","ts":{now[:-9]}.{now[-9:-3]}{where},"task_id":{task_json},"name":' + (
            _NAMES.get(name) or _name(name))
        if trace:
            out += ',"trace_id":' + (task_json if trace == task_id else _esc(trace) if type(trace) is str else _j(trace))
        retries = get("retries")
        if retries is not None:
            out += ',"retries":' + (int.__repr__(retries) if type(retries) is int else _j(retries))
        if routing_key:
            out += ',"queue":' + (_NAMES.get(routing_key) or _name(routing_key))
        if publisher_id:
            out += ',"publisher_task_id":' + _j(publisher_id)
        if traceparent:
            out += ',"traceparent":' + _esc(traceparent)
        out += _links(get, task_id, task_json)
        if not self.capture_args:
            return out + "}"
        if not args and not kwargs and type(args) is tuple and type(kwargs) is dict:
            return out + ',"args":[],"kwargs":{}}'
        return self._with_arguments(out, args, kwargs)

    def received(self, request: Any) -> Optional[Fragment]:
        """task_received, as ``extract.received`` + ``_task``/``_announce`` write it: the attempt's
        fields (``_attempt``) and the message's links."""
        rd = request.request_dict
        try:
            payload = request._Request__payload  # the slot behind the cached_property (which takes a lock)
        except AttributeError:
            payload = request._payload
        embed = payload[2] if isinstance(payload, (tuple, list)) and len(payload) == 3 else None
        if embed is not None and (not isinstance(embed, dict) or embed.get("chain") or embed.get("chord")
                                  or embed.get("callbacks") or embed.get("errbacks")):
            return None  # the embed check (see "Written inline" above)
        task_id = request.id or rd.get("id")
        if type(task_id) is not str or not task_id:
            return None
        get = rd.get
        carried = get(TRACE_HEADER)
        task_json = _esc(task_id)
        attempt = self._attempt(task_id, task_json, request.name, carried or trace_key(rd, embed, None, None),
                                get("retries"), get("delivery_info"))
        if attempt is None:
            return None
        now = str(_time_ns())  # ts (see "Written inline" above)
        ts, links = f"{now[:-9]}.{now[-9:-3]}", _links(get, task_id, task_json)
        if carried and extract.TASKS_STARTED["any"] and len(self.held) < HELD_MAX:
            # Tasks start in this process: hold it for the attempt's end (the module docstring).
            self.held[task_id] = (request.name, attempt, ts, links, None)
            return HELD
        out = f'"kind":"task","type":"received","ts":{ts}{attempt}' + links
        if carried or not self.capture_args:
            return out + "}"  # the instrumented publisher sent the arguments
        # Published by an uninstrumented client: the worker sends the arguments.
        return self._with_arguments(out, get("args"), get("kwargs"))

    def start(self, task_id: Any, task: Any) -> Tuple[Optional[str], List[Fragment]]:
        """task_prerun: (the attempt, or None for the general path; fragments to queue now). The
        started event is held, with the received one or alone; what was held for another name
        under this id, or for a run the general path takes, is handed back to be queued."""
        name = task.name
        kept = self.held.pop(task_id, None) if self.held else None
        try:
            if kept is not None and kept[0] == name:
                attempt: Optional[str] = kept[1]
                received_ts, links = kept[2], kept[3]
            else:
                # task.request only now: a thread-local stack walk that the held attempt saves.
                attempt = self.attempt(task_id, name, task.request)
                received_ts = links = None
            if attempt is None:
                return None, self.render(kept) if kept is not None else []
            now = str(_time_ns())  # ts (see "Written inline" above)
            started: Held = (name, attempt, received_ts, links, f"{now[:-9]}.{now[-9:-3]}")
        except BaseException:
            if kept is not None:
                self.held[task_id] = kept  # for the general path's release_task
            raise
        ready = self.render(kept) if kept is not None and kept[0] != name else []
        if len(self.held) < HELD_MAX:
            self.held[task_id] = started
        else:
            ready += self.render(started)
        return attempt, ready

    def render(self, kept: Held) -> List[Fragment]:
        """A held attempt's events, as they would have been queued."""
        _, attempt, received_ts, links, started_ts = kept
        out: List[Fragment] = []
        if received_ts is not None:
            out.append(f'"kind":"task","type":"received","ts":{received_ts}{attempt}{links}}}')
        if started_ts is not None:
            out.append(f'"kind":"task","type":"started","ts":{started_ts}{attempt}}}')
        return out

    def release_task(self, task_id: Any) -> List[Fragment]:
        """The held events of a task whose attempt ends other than by success (or is revoked)."""
        kept = self.held.pop(task_id, None) if self.held else None
        return self.render(kept) if kept is not None else []

    def release(self, everything: bool = False) -> List[Fragment]:
        """In the sender thread, at every wake-up: the held events that were already held at the
        previous one (so each waits one to two flush intervals), or all of them (a flush)."""
        held = self.held
        out: List[Fragment] = []
        for task_id in (list(held) if everything else self._seen):
            kept = held.pop(task_id, None)
            if kept is not None:
                out += self.render(kept)
        self._seen = list(held)
        return out

    def attempt(self, task_id: Any, name: Any, req: Any) -> Optional[str]:
        """What started and succeeded both say about the attempt (from prerun's ``task.request``),
        as ``extract.context_dict(full=False)`` + ``_task`` write it; None for eager runs."""
        if req.is_eager:
            return None
        task_id = task_id or req.id
        if type(task_id) is not str or not task_id:
            return None
        return self._attempt(task_id, _esc(task_id), name, extract.request_trace(req), req.retries, req.delivery_info)

    def succeeded(self, task_id: Any, attempt: str, runtime_ns: int, retval: Any) -> Fragment:
        """task_postrun[SUCCESS] after a hot prerun: result, state and runtime (signals.on_postrun),
        and the attempt's held events (``received_ts``, ``started_ts`` and the message's links).
        ``runtime_ms`` to the µs, rounded in integers (the general path: ``round(seconds * 1000, 3)``)."""
        us = (runtime_ns + 500) // 1000
        now = str(_time_ns())  # ts (see "Written inline" above)
        head = (f'"kind":"task","type":"succeeded","ts":{now[:-9]}.{now[-9:-3]}{attempt},"state":"SUCCESS",'
                f'"runtime_ms":{us // 1000}.{us % 1000:03d}')
        kept = self.held.pop(task_id, None) if self.held else None
        try:
            if kept is not None:
                if kept[2] is not None:
                    head += f',"received_ts":{kept[2]}{kept[3]}'
                if kept[4] is not None:
                    head += f',"started_ts":{kept[4]}'
            if not self.capture_result:
                return head + "}"
            if retval is None:
                return head + ',"result":null}'
            return self._close(head, [("result", retval)])
        except BaseException:
            if kept is not None:
                self.held[task_id] = kept  # for the general path's release_task
            raise
