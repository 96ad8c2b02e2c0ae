"""Connects the producer to Celery's signals (CELERY.md §1). Every handler only extracts and
enqueues, and swallows its own errors: stemtrace never raises into Celery and never blocks a task."""
from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from celery import signals

from . import extract
from .fastpath import HELD, FastPath
from .mapping import Mapper, trace_key
from .sender import Sender
from .trace import TRACE_HEADER
from .tracecontext import incoming as _incoming_traceparent

log = logging.getLogger("stemtrace")

_time = time.time
_monotonic_ns = time.monotonic_ns


class ReceiverCache(dict):
    """The per-sender receiver cache of Celery's ``Signal(use_caching=True)``, for the signals every
    task sends. Celery creates them without one, so each send takes the signal's lock and rebuilds
    the receiver list (a third of what a dispatch costs). Celery's own cache is a WeakKeyDictionary,
    which raises for a sender that cannot be weakly referenced (before_task_publish's is a str);
    this one holds its senders (task objects, the consumer: few and long-lived), so it is capped.
    ``connect``/``disconnect`` clear it, as they clear Celery's. Lookups stay dict's own (C) ``get``:
    an unhashable sender raises there exactly as it does with Celery's default ``{}``."""

    LIMIT = 512

    def __setitem__(self, sender: Any, receivers: Any) -> None:
        if len(self) >= self.LIMIT:
            self.clear()
        super().__setitem__(sender, receivers)


def cache_receivers(signal: Any) -> None:
    """Turns Celery's receiver cache on for ``signal`` (nothing when it already has one)."""
    if not signal.use_caching:
        signal.sender_receivers_cache = ReceiverCache()
        signal.use_caching = True


def _safe(fn: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.debug("stemtrace handler %s failed", fn.__name__, exc_info=True)

    return wrapper


class SignalHandlers:
    """The receivers of one ``init(app)``; kept alive by the signals (``weak=False``)."""

    def __init__(self, app: Any, sender: Sender, heartbeat_interval: float, cache_signals: bool = True) -> None:
        self.app = app
        self.cache_signals = cache_signals
        self.sender = sender
        self.heartbeat_interval = heartbeat_interval
        #: The hot events written directly as JSON (``fastpath``); None: every event is a record.
        self.fast: Optional[FastPath] = FastPath(sender.mapper) if isinstance(sender.mapper, Mapper) else None
        # The sender releases what the hot path holds (fastpath's "Held events") when it wakes and flushes.
        sender.holds = self.fast
        sender.host = lambda: extract.NODE["name"]  # for the drop report
        #: task id → (monotonic start, the attempt: its JSON from the hot path, else prerun's record),
        #: from prerun to postrun in the same process.
        self._started: Dict[str, Tuple[float, Any]] = {}
        #: task id → trace of tasks that ended other than SUCCESS in this process, for the signals
        #: Celery fires after postrun without the task's request (CELERY.md: an error raised in
        #: on_chord_part_return fires task_failure with another request, 25b). Bounded, oldest out.
        self._ended_traces: Dict[str, str] = {}
        self._heartbeat: Optional[threading.Thread] = None
        self._stop = threading.Event()

    def connect(self) -> None:
        uid = f"stemtrace-{id(self.app)}"
        pairs = [
            (signals.before_task_publish, self.on_publish), (signals.task_received, self.on_received),
            (signals.task_prerun, self.on_prerun),
            (signals.task_failure, self.on_failure), (signals.task_retry, self.on_retry),
            (signals.task_postrun, self.on_postrun), (signals.task_revoked, self.on_revoked),
            (signals.task_unknown, self.on_unknown), (signals.task_rejected, self.on_rejected),
            (signals.task_internal_error, self.on_internal_error), (signals.celeryd_init, self.on_celeryd_init),
            (signals.worker_ready, self.on_worker_ready), (signals.worker_shutting_down, self.on_shutting_down),
            (signals.worker_shutdown, self.on_worker_shutdown), (signals.worker_process_shutdown, self.on_process_shutdown),
        ]
        for signal, handler in pairs:
            signal.connect(handler, weak=False, dispatch_uid=f"{uid}-{handler.__name__}")
        if self.cache_signals:
            for signal in (signals.before_task_publish, signals.task_received, signals.task_prerun, signals.task_postrun):
                cache_receivers(signal)

    # ---- tasks ----

    # The four per-task receivers name every argument Celery 5.2 sends them (signal included): binding
    # them costs less than collecting them in **_ (about 0.3 µs a dispatch); **_ stays for other versions.

    def on_publish(self, signal: Any = None, sender: Any = None, body: Any = None, exchange: Any = None,
                   routing_key: Any = None, headers: Any = None, properties: Any = None, declare: Any = None,
                   retry_policy: Any = None, **_: Any) -> None:
        try:
            if not isinstance(headers, dict) or not headers.get("id"):
                return  # protocol 1 or foreign messages: nothing we can attach
            args, kwargs, embed, publisher_id, trace = extract.publish_context(body, headers)
            # A publish outside any task: the W3C trace it was made under (the OTLP export joins it).
            tp = None if publisher_id else _incoming_traceparent(headers)
            event = None
            if self.fast is not None:
                try:
                    event = self.fast.published(headers, args, kwargs, embed, routing_key,
                                                headers.get("task") or sender, publisher_id, trace, tp)
                except Exception:
                    event = None  # the general path below says the same
            if event is None:
                event = extract.publish_record(_time(), sender, headers, args, kwargs, embed, routing_key, publisher_id,
                                               trace, tp)
            self.sender.enqueue(event)
        except Exception:  # never into Celery (inlined _safe: this runs for every task)
            log.debug("stemtrace handler %s failed", "on_publish", exc_info=True)

    def on_received(self, signal: Any = None, sender: Any = None, request: Any = None, **_: Any) -> None:
        try:
            if request is None:
                return
            event = None
            if self.fast is not None:
                try:
                    event = self.fast.received(request)
                except Exception:
                    event = None
                if event is HELD:
                    return
            self.sender.enqueue(extract.received(request) if event is None else event)
        except Exception:  # never into Celery (inlined _safe: this runs for every task)
            log.debug("stemtrace handler %s failed", "on_received", exc_info=True)

    def on_prerun(self, signal: Any = None, sender: Any = None, task_id: Optional[str] = None, task: Any = None,
                  args: Any = None, kwargs: Any = None, **_: Any) -> None:
        try:
            extract.TASKS_STARTED["any"] = True
            attempt = None
            fast = self.fast
            if fast is not None:
                try:
                    attempt, ready = fast.start(task_id, task)  # the started event is held (fastpath)
                    for fragment in ready:
                        self.sender.enqueue(fragment)
                    self.sender.ensure_thread()  # a pool child's first task: nothing queued yet
                except Exception:
                    attempt = None
                if attempt is not None:
                    self._started[task_id] = (_monotonic_ns(), attempt)
                    return
                self._release(task_id)
            if attempt is None:
                req = task.request
                # The worker's `received` already described the message; an eager run has no received (and
                # no publish), so only then does the start carry the links and the arguments.
                eager = bool(req.is_eager)
                event = attempt = extract.base("task_prerun", task_id, task.name)
                attempt["request"] = extract.context_dict(req, eager)
                attempt["trace_id"] = extract.request_trace(req)
                if eager:
                    attempt["args"], attempt["kwargs"] = args, kwargs
            self._started[task_id] = (_monotonic_ns(), attempt)
            self.sender.enqueue(event)
        except Exception:  # never into Celery (inlined _safe: this runs for every task)
            log.debug("stemtrace handler %s failed", "on_prerun", exc_info=True)

    def _release(self, task_id: Any) -> None:
        """Queues what the hot path holds for a task whose attempt takes the general path from here."""
        if self.fast is not None and self.fast.held:
            for fragment in self.fast.release_task(task_id):
                self.sender.enqueue(fragment)

    @_safe
    def on_failure(self, sender: Any = None, task_id: Optional[str] = None, exception: Any = None, traceback: Any = None, einfo: Any = None, **_: Any) -> None:
        self._release(task_id)
        # In the worker main process (WorkerLostError, hard time limit) sender.request is not this task's.
        rec = extract.task_signal("task_failure", sender, task_id, full=False)
        if not rec.get("trace_id") and task_id:
            # Not this task's request: its trace is the one it ran in here, never a trace of its own.
            started = self._started.get(task_id)
            attempt = started[1] if started is not None else None
            trace = attempt.get("trace_id") if isinstance(attempt, dict) else self._ended_traces.get(task_id)
            if trace:
                rec["trace_id"] = trace
        rec["exception"] = extract.exception_info(exception)
        rec["traceback"] = extract.einfo_traceback(einfo, traceback)
        self.sender.enqueue(rec)

    @_safe
    def on_retry(self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
        self._release(getattr(request, "id", None))
        rec = extract.base("task_retry", getattr(request, "id", None), getattr(sender, "name", None))
        if request is not None:
            rec["request"] = extract.context_dict(request, full=False)
            rec["trace_id"] = extract.request_trace(request)
        exc = getattr(reason, "exc", None)
        when = getattr(reason, "when", None)
        rec["reason"] = {"message": str(reason) if reason is not None else None, "exc": extract.exception_info(exc),
                         "when": when if isinstance(when, (int, float)) else extract._iso(when)}
        self.sender.enqueue(rec)

    def on_postrun(self, signal: Any = None, sender: Any = None, task_id: Optional[str] = None, task: Any = None,
                   args: Any = None, kwargs: Any = None, retval: Any = None, state: Any = None, **_: Any) -> None:
        try:
            # task_success is not connected: postrun fires right after it in the same process and
            # carries the return value too, so a success is ONE `succeeded` event with result, state
            # and runtime (one signal dispatch and one event fewer per task on the hot path).
            # The signal is chosen by postrun's state, which is SUCCESS exactly when task_success fired.
            success = state == "SUCCESS"
            started = self._started.pop(task_id, None) if task_id else None
            if started is not None:
                t0, attempt = started
                runtime_ns = _monotonic_ns() - t0
                if type(attempt) is str:  # the hot path's prerun
                    event = None
                    if success:
                        try:
                            event = self.fast.succeeded(task_id, attempt, runtime_ns, retval)
                        except Exception:
                            event = None
                    if event is not None:
                        self.sender.enqueue(event)
                        return
                    self._release(task_id)
                    # Other outcomes take the general path; the task's request is still this attempt's.
                    rec = extract.task_signal("task_success" if success else "task_postrun", task or sender, task_id, full=False)
                else:
                    # The attempt as prerun saw it: no second walk through task.request.
                    rec = extract.base("task_success" if success else "task_postrun", task_id, attempt["task_name"])
                    rec["request"], rec["trace_id"] = attempt["request"], attempt["trace_id"]
                rec["runtime_s"] = runtime_ns / 1e9
            else:
                rec = extract.task_signal("task_success" if success else "task_postrun", task or sender, task_id, full=False)
            rec["state"] = state
            if success:
                rec["result"] = retval
            elif rec.get("trace_id") and task_id:
                ended = self._ended_traces
                ended[task_id] = rec["trace_id"]
                if len(ended) > 1024:
                    del ended[next(iter(ended))]
            self.sender.enqueue(rec)
        except Exception:  # never into Celery (inlined _safe: this runs for every task)
            log.debug("stemtrace handler %s failed", "on_postrun", exc_info=True)

    @_safe
    def on_revoked(self, sender: Any = None, request: Any = None, terminated: Any = None, signum: Any = None, expired: Any = None, **_: Any) -> None:
        rec = extract.base("task_revoked", getattr(request, "id", None), getattr(sender, "name", None))
        self._release(rec["task_id"])  # its received, held for a start that will not come
        if request is not None:
            rec["request"] = extract.context_dict(request)
            rec["trace_id"] = extract.request_trace(request)
        rec.update(terminated=bool(terminated), expired=bool(expired), signum=int(signum) if signum is not None else None)
        self.sender.enqueue(rec)

    @_safe
    def on_unknown(self, sender: Any = None, message: Any = None, exc: Any = None, name: Any = None, id: Any = None, **_: Any) -> None:
        headers = extract.message_headers(message)
        rec = extract.base("task_unknown", id or headers.get("id"), name or headers.get("task"))
        rec["message"] = {"headers": headers, "delivery_info": dict(getattr(message, "delivery_info", None) or {})}
        rec["exception"] = extract.exception_info(exc)
        rec["trace_id"] = headers.get(TRACE_HEADER) or trace_key(headers, None, None, None)
        self.sender.enqueue(rec)

    @_safe
    def on_rejected(self, sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
        headers = extract.message_headers(message)
        if not headers.get("id"):
            return
        rec = extract.base("task_rejected", headers["id"], headers.get("task"))
        rec["message"] = {"headers": headers, "delivery_info": dict(getattr(message, "delivery_info", None) or {})}
        rec["exception"] = extract.exception_info(exc)
        rec["trace_id"] = headers.get(TRACE_HEADER) or trace_key(headers, None, None, None)
        self.sender.enqueue(rec)

    @_safe
    def on_internal_error(self, sender: Any = None, task_id: Optional[str] = None, request: Any = None, exception: Any = None, traceback: Any = None, einfo: Any = None, **_: Any) -> None:
        rec = extract.base("task_internal_error", task_id, getattr(sender, "name", None))
        if isinstance(request, dict):
            rec["request"] = {k: request.get(k) for k in ("id", "retries", "root_id", "parent_id", "group", "group_index")}
            rec["trace_id"] = request.get(TRACE_HEADER) or (trace_key(request, None, None, None) if request.get("id") else None)
        rec["exception"] = extract.exception_info(exception)
        rec["traceback"] = extract.einfo_traceback(einfo, traceback)
        self.sender.enqueue(rec)

    # ---- workers ----

    @_safe
    def on_celeryd_init(self, sender: Any = None, **_: Any) -> None:
        extract.NODE["name"] = sender

    @_safe
    def on_worker_ready(self, sender: Any = None, **_: Any) -> None:
        hostname = getattr(sender, "hostname", None)
        if hostname:
            extract.NODE["name"] = hostname
        rec = extract.base("worker_ready", None, None)
        rec.update(self._worker_info(sender))
        self.sender.enqueue(rec)
        self._start_heartbeat()

    def _worker_info(self, consumer: Any) -> Dict[str, Any]:
        import celery

        from .registry import registered_tasks

        pool = getattr(getattr(consumer, "pool", None), "__class__", None)
        queues = []
        try:
            queues = sorted(q.name for q in consumer.task_consumer.queues)
        except Exception:
            queues = sorted(getattr(self.app.amqp, "queues", {}) or [])
        pool_name = pool.__module__.rsplit(".", 1)[-1] if pool else None
        concurrency = getattr(getattr(consumer, "controller", None), "concurrency", None)
        return {
            "registered": registered_tasks(self.app),
            "pool": pool_name,
            # -P solo runs one task at a time whatever -c says (Celery's banner shows -c anyway).
            "concurrency": 1 if pool_name == "solo" else concurrency,
            "queues": queues,
            "sw_ver": celery.__version__,
            "freq": self.heartbeat_interval,
        }

    def _start_heartbeat(self) -> None:
        if self._heartbeat and self._heartbeat.is_alive():
            return
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name="stemtrace-heartbeat", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        from celery.worker import state

        while not self._stop.wait(self.heartbeat_interval):
            try:
                rec = extract.base("heartbeat_sent", None, None)
                rec["active"] = sorted(r.id for r in list(state.active_requests))
                rec["freq"] = self.heartbeat_interval
                self.sender.enqueue(rec)
            except Exception:
                log.debug("stemtrace heartbeat failed", exc_info=True)

    @_safe
    def on_shutting_down(self, sender: Any = None, how: Any = None, **_: Any) -> None:
        rec = extract.base("worker_shutting_down", None, None)
        rec["how"] = how
        self.sender.enqueue(rec)
        if str(how).lower() == "cold":
            self._stop.set()
            self.sender.flush(1.0)  # a cold stop may never reach worker_shutdown

    @_safe
    def on_worker_shutdown(self, sender: Any = None, **_: Any) -> None:
        self._stop.set()
        self.sender.enqueue(extract.base("worker_shutdown", None, None))
        self.sender.close()  # the exit flush: STEMTRACE_EXIT_FLUSH_S, then the spool

    @_safe
    def on_process_shutdown(self, sender: Any = None, **_: Any) -> None:
        self.sender.close()  # a pool child leaves by os._exit: atexit would not run
