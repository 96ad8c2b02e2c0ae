"""The background sender: signal handlers only enqueue records (stage A); one daemon thread per
process maps them (stage B), batches, gzips and POSTs over one kept-alive connection. Fork-safe (a
child starts its own thread and connection on first use) and never raises.

The four events every task sends (published, received, started, succeeded) arrive already written
as JSON (``fastpath``), but for the values the scrubber has to walk; the sender thread adds their id
and seq (``Mapper.finish``). Every other record is mapped here, batched, as before.
"""
from __future__ import annotations

import atexit
import collections
import gzip
import http.client
import itertools
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Deque, Dict, List, Optional

from .config import Config
from .mapping import encode

log = logging.getLogger("stemtrace")

#: Refreshed after fork so the hot path can tell "new process" without a system call.
_PID = {"pid": os.getpid()}
os.register_at_fork(after_in_child=lambda: _PID.__setitem__("pid", os.getpid()))

Mapper = Callable[[Dict[str, Any], int], Optional[Dict[str, Any]]]

#: Stay under the server's 1 MiB (decompressed) per batch (shared/wire.ts MAX_BATCH_BYTES).
MAX_BATCH_CHARS = 1_000_000

#: What a kept-alive connection the server has meanwhile closed raises on its next request.
_STALE = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)


class Sender:
    """Bounded queue of signal records → batched, gzipped POSTs to ``{url}/v1/events``.

    When the queue is full the oldest event is dropped and counted (``dropped``): a slow or
    absent server costs events, never task latency.
    """

    def __init__(self, config: Config, mapper: Mapper, post: Optional[Callable[[bytes], int]] = None) -> None:
        self.config = config
        self.mapper = mapper
        self._post = post or self._http_post
        #: Fragments (``fastpath``) → JSON, when the mapper is the real one (``Mapper.finish``).
        self._finish = getattr(mapper, "finish", None)
        #: Records (dicts, mapped in the sender thread) and fragments (already JSON), in order.
        self._queue: Deque[Any] = collections.deque(maxlen=config.queue_size)
        self._conn: Optional[http.client.HTTPConnection] = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._pid: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._seq = itertools.count(1)  # per process: itertools.count is atomic under the GIL
        self._flush_requested = False
        #: Events the hot path holds back (``fastpath.FastPath``: ``held``, ``release``), set by the handlers.
        self.holds: Any = None
        self.dropped = 0
        self.sent = 0
        self.failed_batches = 0
        self.unmappable = 0
        atexit.register(self.flush, 2.0)

    def enqueue(self, item: Any) -> None:
        """Called from signal handlers: O(1), no I/O, no lock (but once per process). ``item`` is a
        record (a dict, mapped in the sender thread) or a fragment (``fastpath``, already JSON)."""
        if self._pid != _PID["pid"]:
            self._start()  # first, so that a forked child drops its parent's queue, not its own records
        queue = self._queue
        size = len(queue)
        if size >= self.config.queue_size:
            self.dropped += 1  # deque(maxlen) drops the oldest on append
        queue.append(item)
        if size + 1 == self.config.batch_size:
            # A full batch is waiting: wake the sender once, at the crossing (Event.set takes a
            # lock; the sender drains everything above a batch before it sleeps again).
            self._wake.set()

    def ensure_thread(self) -> None:
        """Starts this process's sender thread if it has none yet (the hot path holds events without
        queueing anything, and only the thread releases them)."""
        if self._pid != _PID["pid"]:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._pid == _PID["pid"] and self._thread and self._thread.is_alive():
                return
            # After fork the parent's thread does not exist here: start this process's own, and
            # number this process's events from 1 (seq is per process).
            if self._pid is not None and self._pid != _PID["pid"]:
                self._seq = itertools.count(1)
                # The parent's unsent records are the parent's to send (enqueue starts this thread
                # before it appends the child's first record), and so is its connection's socket.
                self._queue.clear()
                self._conn = None
            self._pid = _PID["pid"]
            self._thread = threading.Thread(target=self._run, name="stemtrace-sender", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.config.flush_interval)
            self._wake.clear()
            try:
                everything, self._flush_requested = self._flush_requested, False
                self._drain(everything)
            except Exception:  # the sender must survive anything
                log.debug("stemtrace sender error", exc_info=True)

    def _drain(self, everything: bool = False) -> None:
        """Maps and sends what is queued. Between flush intervals only full batches go out, so a
        busy process sends a few large batches a second instead of many small ones."""
        queue = self._queue
        mapper, finish = self.mapper, self._finish
        holds = self.holds
        if holds is not None and holds.held:
            self._idle.clear()  # before they leave `held`: flush() waits while either holds anything
            queue.extend(holds.release(everything))
        first = True
        while queue and (first or everything or len(queue) >= self.config.batch_size):
            first = False
            self._idle.clear()
            events: List[str] = []
            while queue and len(events) < self.config.batch_size:
                item = queue.popleft()
                seq = next(self._seq)
                try:
                    if type(item) is dict:
                        event = mapper(item, seq)
                        if event is None:
                            continue
                        events.append(encode(event))
                    else:
                        events.append(finish(item, seq))
                except Exception:
                    self.unmappable += 1
                    log.debug("stemtrace could not map %s", item.get("signal") if type(item) is dict else "a fragment",
                              exc_info=True)
            if events:
                self._send_capped(events)
        self._idle.set()

    def _send_capped(self, events: List[str]) -> None:
        """Events (JSON each) → POSTs of at most MAX_BATCH_CHARS of JSON (the server's per-batch limit;
        an event larger than that alone goes out alone, and the server rejects it)."""
        if sum(map(len, events)) + len(events) + 12 <= MAX_BATCH_CHARS:
            self._send(events)  # the usual case
            return
        start, size = 0, 12  # len('{"events":[]}') - 1
        for i, text in enumerate(events):
            if size + len(text) + 1 > MAX_BATCH_CHARS and i > start:
                self._send(events[start:i])
                start, size = i, 12
            size += len(text) + 1
        self._send(events[start:])

    def _send(self, events: List[str]) -> None:
        count = len(events)
        body = gzip.compress(('{"events":[' + ",".join(events) + "]}").encode(), 1)
        delay = 0.2
        for attempt in range(4):
            try:
                status = self._post(body)
            except Exception as err:
                status = 0
                log.debug("stemtrace POST failed: %s", err)
            if 200 <= status < 300:
                self.sent += count
                return
            if status and 400 <= status < 500 and status != 429:
                log.warning("stemtrace rejected a batch (HTTP %s); dropping %d events", status, count)
                self.failed_batches += 1
                return
            if attempt < 3:
                time.sleep(delay)  # network error, 5xx or 429: back off 0.2, 0.6, 1.8 s
                delay *= 3
        self.failed_batches += 1
        log.warning("stemtrace is unreachable at %s; dropped %d events", self.config.endpoint, count)

    def _http_post(self, body: bytes) -> int:
        """One POST over this process's kept-alive connection (a new TCP and TLS handshake per batch
        cost more than the batch). Through urllib instead when a proxy is configured for the URL."""
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "User-Agent": "stemtrace-python/0.1"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        url = urllib.parse.urlsplit(self.config.endpoint)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        while True:
            reused = self._conn is not None
            if self._conn is None:
                if self._proxied(url):
                    return self._urllib_post(body, headers)
                cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
                self._conn = cls(url.hostname, url.port, timeout=self.config.timeout)
            conn = self._conn
            try:
                conn.request("POST", path, body, headers)
                res = conn.getresponse()
                res.read()
                if res.will_close:
                    self._close()
                return res.status
            except _STALE:
                self._close()
                if not reused:
                    raise
                # The server closed the idle connection: once more, on a new one.
            except BaseException:
                self._close()
                raise

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    @staticmethod
    def _proxied(url: urllib.parse.SplitResult) -> bool:
        proxies = urllib.request.getproxies()
        return url.scheme in proxies and not urllib.request.proxy_bypass(url.hostname or "")

    def _urllib_post(self, body: bytes, headers: Dict[str, str]) -> int:
        req = urllib.request.Request(self.config.endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.config.timeout) as res:
                return res.status
        except urllib.error.HTTPError as err:
            return err.code

    def flush(self, timeout: float = 2.0) -> bool:
        """Sends what is queued, waiting at most ``timeout`` seconds. True when everything went out."""
        try:
            if not self._queue and not self._holding() and self._idle.is_set():
                return True
            if self._pid != _PID["pid"] or not (self._thread and self._thread.is_alive()):
                self._start()
            deadline = time.monotonic() + timeout
            self._flush_requested = True
            while time.monotonic() < deadline:
                self._wake.set()
                # The queue first: the sender clears _idle before it takes anything off the queue.
                if not self._queue and not self._holding() and self._idle.wait(0.05):
                    return True
                if self._queue:
                    time.sleep(0.001)  # not taken yet: do not spin on the GIL the sender needs
            return not self._queue and not self._holding()
        except Exception:
            return False

    def _holding(self) -> bool:
        return self.holds is not None and bool(self.holds.held)
