"""The background sender: signal handlers only enqueue records (stage A); one daemon thread per
process maps them (stage B), batches, gzips and POSTs. Fork-safe (a child starts its own thread on
first use) and never raises.

Mapping in the sender thread, batched, measured cheaper per task than mapping and encoding each
event inside its signal handler (one ``json`` call per batch instead of per event), and it keeps
the handlers' cost independent of argument sizes.
"""
from __future__ import annotations

import atexit
import collections
import gzip
import itertools
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Deque, Dict, List, Optional

from .config import Config

log = logging.getLogger("stemtrace")

#: Refreshed after fork so the hot path can tell "new process" without a system call.
_PID = {"pid": os.getpid()}
os.register_at_fork(after_in_child=lambda: _PID.__setitem__("pid", os.getpid()))

Mapper = Callable[[Dict[str, Any], int], Optional[Dict[str, Any]]]

#: Events → compact JSON. Anything JSON cannot encode (a stray datetime) becomes its str().
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode

#: Stay under the server's 1 MiB (decompressed) per batch (shared/wire.ts MAX_BATCH_BYTES).
MAX_BATCH_CHARS = 1_000_000


class Sender:
    """Bounded queue of signal records → batched, gzipped POSTs to ``{url}/v1/events``.

    When the queue is full the oldest event is dropped and counted (``dropped``): a slow or
    absent server costs events, never task latency.
    """

    def __init__(self, config: Config, mapper: Mapper, post: Optional[Callable[[bytes], int]] = None) -> None:
        self.config = config
        self.mapper = mapper
        self._post = post or self._http_post
        self._queue: Deque[Dict[str, Any]] = collections.deque(maxlen=config.queue_size)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._pid: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._seq = itertools.count(1)  # per process: itertools.count is atomic under the GIL
        self._flush_requested = False
        self.dropped = 0
        self.sent = 0
        self.failed_batches = 0
        self.unmappable = 0
        atexit.register(self.flush, 2.0)

    def enqueue(self, record: Dict[str, Any]) -> None:
        """Called from signal handlers: O(1), no I/O, no lock."""
        queue = self._queue
        size = len(queue)
        if size >= self.config.queue_size:
            self.dropped += 1  # deque(maxlen) drops the oldest on append
        queue.append(record)
        if self._pid != _PID["pid"]:
            self._start()
        if size + 1 == self.config.batch_size:
            # A full batch is waiting: wake the sender once, at the crossing (Event.set takes a
            # lock; the sender drains everything above a batch before it sleeps again).
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._pid == _PID["pid"] and self._thread and self._thread.is_alive():
                return
            # After fork the parent's thread does not exist here: start this process's own, and
            # number this process's events from 1 (seq is per process).
            if self._pid is not None and self._pid != _PID["pid"]:
                self._seq = itertools.count(1)
                # The parent's unsent records are the parent's to send: keep only this process's.
                mine = [r for r in self._queue if r.get("pid") == _PID["pid"]]
                self._queue.clear()
                self._queue.extend(mine)
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
        first = True
        while queue and (first or everything or len(queue) >= self.config.batch_size):
            first = False
            self._idle.clear()
            events: List[Dict[str, Any]] = []
            while queue and len(events) < self.config.batch_size:
                rec = queue.popleft()
                try:
                    event = self.mapper(rec, next(self._seq))
                except Exception:
                    self.unmappable += 1
                    log.debug("stemtrace could not map %s", rec.get("signal"), exc_info=True)
                    continue
                if event is not None:
                    events.append(event)
            if events:
                self._send_capped(events)
        self._idle.set()

    def _send_capped(self, events: List[Dict[str, Any]]) -> None:
        """One POST, or halves of it while the JSON exceeds the server's per-batch limit."""
        body = _encode({"events": events})
        if len(body) > MAX_BATCH_CHARS and len(events) > 1:
            half = len(events) // 2
            self._send_capped(events[:half])
            self._send_capped(events[half:])
            return
        self._send(body, len(events))

    def _send(self, body_json: str, count: int) -> None:
        body = gzip.compress(body_json.encode(), 1)
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
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "User-Agent": "stemtrace-python/0.1"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        req = urllib.request.Request(self.config.endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.config.timeout) as res:
                return res.status
        except urllib.error.HTTPError as err:
            return err.code

    def flush(self, timeout: float = 2.0) -> bool:
        """Sends what is queued, waiting at most ``timeout`` seconds. True when everything went out."""
        try:
            if not self._queue and self._idle.is_set():
                return True
            if self._pid != _PID["pid"] or not (self._thread and self._thread.is_alive()):
                self._start()
            deadline = time.monotonic() + timeout
            self._flush_requested = True
            while time.monotonic() < deadline:
                self._wake.set()
                if not self._queue and self._idle.wait(0.05):
                    return True
            return not self._queue
        except Exception:
            return False
