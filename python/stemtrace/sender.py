"""The background sender: signal handlers only enqueue records (stage A); one daemon thread per
process maps them (stage B), batches, gzips and POSTs over one kept-alive connection. Fork-safe (a
child starts its own thread and connection on first use) and never raises.

The four events every task sends (published, received, started, succeeded) arrive already written
as JSON (``fastpath``), but for the values the scrubber has to walk; the sender thread adds their id
and seq (``Mapper.finish``). Every other record is mapped here, batched, as before.

Nothing is lost to an outage within the bounds: mapped events wait in the outage buffer
(``_pending``, bounded by events and bytes) until the server accepts them, retried with exponential
backoff and jitter; only when it is full do the oldest go (to the disk spool when one is configured,
``spool``; else counted as dropped). Every drop is counted by reason (``drop_counts``) and reported
to the server on the batches this process sends (the envelope's ``producer``). An outage is logged
once when it starts and once when its backlog has been sent.
"""
from __future__ import annotations

import atexit
import collections
import gzip
import http.client
import itertools
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, Union

from .config import Config
from .mapping import encode
from .spool import Spool

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

#: An outage's start is logged at most this often (a server that flaps logs one line a minute).
OUTAGE_LOG_EVERY_S = 60.0
#: How often a sender looks for spooled batches (its own or other processes') while all is well.
REPLAY_EVERY_S = 5.0


def backoff(failures: int, initial: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """The wait before the next attempt after ``failures`` (1, 2, ...) consecutive failed ones:
    ``initial`` doubled each time up to ``cap``, with "equal jitter" (a uniform draw in the upper
    half), so processes that lost the server together do not all come back in the same instant."""
    step = min(cap, initial * 2.0 ** min(failures - 1, 60))
    return step / 2 + rand() * step / 2


def _reason(err: BaseException) -> str:
    """A short why for the outage log line."""
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, TimeoutError) or "timed out" in str(err):
        return "timed out"
    text = str(err) or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


class _Outage:
    """One outage: when it started, what had been sent and dropped by then, whether it was logged."""

    def __init__(self, reason: str, sent: int, dropped: int) -> None:
        self.start = time.monotonic()
        self.reason = reason
        self.sent = sent
        self.dropped = dropped
        self.logged = False
        #: When the server answered again (the backlog is being sent), else None.
        self.back: Optional[float] = None


class Sender:
    """Bounded queue of signal records → batched, gzipped POSTs to ``{url}/v1/events``.

    Two stages, both bounded: the hot path's queue (records and fragments, ``queue_size``; when it
    is full the oldest is dropped, counted ``queue_full``: a slow sender thread costs events, never
    task latency) and the outage buffer of mapped events (``buffer_max_events``/``buffer_max_bytes``).
    """

    def __init__(self, config: Config, mapper: Mapper, post: Optional[Callable[[bytes], Union[int, Tuple[int, bytes]]]] = None) -> None:
        self.config = config
        self.mapper = mapper
        self._post = post or self._http_post
        #: Fragments (``fastpath``) → JSON, when the mapper is the real one (``Mapper.finish``).
        self._finish = getattr(mapper, "finish", None)
        #: Records (dicts, mapped in the sender thread) and fragments (already JSON), in order.
        self._queue: Deque[Any] = collections.deque(maxlen=config.queue_size)
        #: The outage buffer: events as JSON, oldest first, until the server accepts them.
        self._pending: Deque[str] = collections.deque()
        self._pending_chars = 0
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
        #: This process's node name for the drop report (the handlers set it; None in a client).
        self.host: Callable[[], Optional[str]] = lambda: None
        self._queue_drops = 0  # the hot path's own counter: one attribute increment
        #: reason → events dropped (``buffer_full``, ``spool_full``, ``rejected``, ``unencodable``, ``exit``).
        self.drops: Dict[str, int] = {}
        self.sent = 0
        self.spooled = 0
        self.failed_batches = 0
        self.unmappable = 0
        self._failures = 0
        self._next_try = 0.0
        self._outage: Optional[_Outage] = None
        self._last_outage_log = -OUTAGE_LOG_EVERY_S
        self._last_reject_log = -OUTAGE_LOG_EVERY_S
        self._spool_obj: Optional[Spool] = None
        self._next_replay = 0.0
        self._spool_drained = False
        self._closing = False
        self._process = ""
        atexit.register(self.close)

    # ---- counters ----

    @property
    def dropped(self) -> int:
        """Events this process lost, all reasons."""
        return self._queue_drops + sum(self.drops.values())

    def drop_counts(self) -> Dict[str, int]:
        """reason → events this process lost (cumulative; what the server is told)."""
        out = {k: v for k, v in self.drops.items() if v}
        if self._queue_drops:
            out["queue_full"] = self._queue_drops
        return out

    def _drop(self, reason: str, count: int) -> None:
        if count > 0:
            self.drops[reason] = self.drops.get(reason, 0) + count

    # ---- the hot path ----

    def enqueue(self, item: Any) -> None:
        """Called from signal handlers: O(1), no I/O, no lock (but once per process). ``item`` is a
        record (a dict, mapped in the sender thread) or a fragment (``fastpath``, already JSON)."""
        if self._pid != _PID["pid"]:
            self._start()  # first, so that a forked child drops its parent's queue, not its own records
        queue = self._queue
        size = len(queue)
        if size >= self.config.queue_size:
            self._queue_drops += 1  # deque(maxlen) drops the oldest on append
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
                # The parent's unsent events are the parent's to send (enqueue starts this thread
                # before it appends the child's first record), and so are its connection's socket,
                # its counters (per process) and its outage.
                self._queue.clear()
                self._pending.clear()
                self._pending_chars = 0
                self._conn = None
                self._queue_drops = 0
                self.drops = {}
                self.sent = self.spooled = self.failed_batches = self.unmappable = 0
                self._failures = 0
                self._next_try = 0.0
                self._outage = None
                self._spool_obj = None
                self._next_replay = 0.0
            self._pid = _PID["pid"]
            self._process = os.urandom(6).hex()  # tells apart processes that reuse a pid, in the drop report
            self._thread = threading.Thread(target=self._run, name="stemtrace-sender", daemon=True)
            self._thread.start()

    # ---- the sender thread ----

    def _run(self) -> None:
        while True:
            wait = self.config.flush_interval
            if self._next_try and (self._pending or self._outage is not None):
                wait = max(0.0, min(wait, self._next_try - time.monotonic()))
            woke = self._wake.wait(wait)
            self._wake.clear()
            try:
                everything, self._flush_requested = self._flush_requested, False
                self._drain(everything, everything or not woke)
            except Exception:  # the sender must survive anything
                log.debug("stemtrace sender error", exc_info=True)
                self._idle.set()

    def _drain(self, everything: bool = False, partial: bool = True) -> None:
        """Maps what is queued into the outage buffer and sends it. Between flush intervals
        (``partial`` False) only full batches go out, so a busy process sends a few large batches a
        second instead of many small ones."""
        holds = self.holds
        if holds is not None and holds.held:
            self._idle.clear()  # before they leave `held`: flush() waits while either holds anything
            self._queue.extend(holds.release(everything))
        if self._queue:
            self._idle.clear()
            self._map_queue()
        if self._pending:
            self._idle.clear()
            self._pump(partial)
        if self.config.spool_dir and not self._pending:
            self._replay()  # in an outage, the spool's oldest batch is the probe
        if (self._outage is not None and self._outage.back is not None and not self._pending
                and (not self.config.spool_dir or self._spool_drained)):
            self._recovered()
        self._idle.set()

    def _map_queue(self) -> None:
        """Queued records and fragments → events (JSON) at the end of the outage buffer."""
        queue, pending = self._queue, self._pending
        mapper, finish = self.mapper, self._finish
        chars = 0
        while queue:
            item = queue.popleft()
            seq = next(self._seq)
            try:
                if type(item) is dict:
                    event = mapper(item, seq)
                    if event is None:
                        continue
                    text = encode(event)
                else:
                    text = finish(item, seq)
            except Exception:
                self.unmappable += 1
                self._drop("unencodable", 1)
                log.debug("stemtrace could not map %s", item.get("signal") if type(item) is dict else "a fragment",
                          exc_info=True)
                continue
            pending.append(text)
            chars += len(text)
        self._pending_chars += chars
        self._bound()

    def _head(self, limit: Optional[int] = None) -> Tuple[int, int]:
        """(events, chars) of the batch at the buffer's head: at most ``batch_size`` (or ``limit``)
        events and MAX_BATCH_CHARS of JSON, the server's limits (a larger event alone goes alone)."""
        most = self.config.batch_size if limit is None else limit
        pending = self._pending
        if len(pending) <= most and self._pending_chars + len(pending) + 12 <= MAX_BATCH_CHARS:
            return len(pending), self._pending_chars  # the usual case: all of it
        head = sum(map(len, itertools.islice(pending, most)))
        if head + most + 12 <= MAX_BATCH_CHARS:
            return min(most, len(pending)), head
        count, chars = 0, 12  # len('{"events":[]}') - 1
        for text in self._pending:
            if count >= most or (count and chars + len(text) + 1 > MAX_BATCH_CHARS):
                break
            count += 1
            chars += len(text) + 1
        return count, chars - 12 - count

    def _take(self, count: int, chars: int) -> None:
        pending = self._pending
        for _ in range(min(count, len(pending))):  # close() may have emptied it meanwhile
            pending.popleft()
        self._pending_chars = max(0, self._pending_chars - chars)

    def _bound(self) -> None:
        """Holds the outage buffer to its bounds: the oldest events leave first, to the spool when
        there is one (else, or when it cannot take them, they are dropped and counted)."""
        cfg = self.config
        pending = self._pending
        while pending and (len(pending) > cfg.buffer_max_events or self._pending_chars > cfg.buffer_max_bytes):
            if cfg.spool_dir:
                count, chars = self._head()
                if self._to_spool(list(itertools.islice(pending, count))):
                    self._take(count, chars)
                    continue
            # No spool (or it failed): drop just enough of the oldest.
            while pending and (len(pending) > cfg.buffer_max_events or self._pending_chars > cfg.buffer_max_bytes):
                self._pending_chars -= len(pending.popleft())
                self._drop("buffer_full", 1)
            self._pending_chars = max(0, self._pending_chars)

    def _pump(self, partial: bool) -> None:
        """Sends the buffer, oldest first, one batch after another while the server accepts them; after
        a failure the next attempt waits for the backoff (and, with a spool, the buffer goes to disk)."""
        pending = self._pending
        while pending and not self._closing:
            if time.monotonic() < self._next_try:
                return
            count, chars = self._head()
            if count == len(pending) and count < self.config.batch_size and not partial and self._outage is None:
                return  # a partial batch waits for the flush interval
            status, reason, answer = self._try(self._body(list(itertools.islice(pending, count))))
            if 200 <= status < 300:
                self._take(count, chars)
                self._accepted(count, answer)
                self._answered()
            elif self._refused(status):
                self._take(count, chars)
                self._rejected(status, count)
                self._answered()
            else:
                self._failed(reason)
                if self.config.spool_dir:
                    self._spool_all()
                return

    def _spool_all(self) -> None:
        """During an outage with a spool, the buffer goes to disk (a crash or restart then loses nothing)."""
        while self._pending:
            count, chars = self._head()
            if not self._to_spool(list(itertools.islice(self._pending, count))):
                return  # the disk refused: the events stay in memory, bounded as ever
            self._take(count, chars)

    def _to_spool(self, events: List[str]) -> bool:
        spool = self._spool()
        if spool is None or not events:
            return False
        written, evicted = spool.write(events)
        self._drop("spool_full", evicted)
        if written:
            self.spooled += len(events)
        return written

    def _spool(self) -> Optional[Spool]:
        directory = self.config.spool_dir
        if not directory:
            return None
        if self._spool_obj is None or self._spool_obj.directory != directory:
            self._spool_obj = Spool(directory, self.config.spool_max_bytes)
        self._spool_obj.max_bytes = self.config.spool_max_bytes
        return self._spool_obj

    def _replay(self) -> None:
        """Sends one spooled batch (this process's or another's, from before a restart too), when the
        server is up; the next round takes the next one, so new events never wait behind a big spool."""
        now = time.monotonic()
        if self._closing or now < (self._next_try if self._outage is not None else self._next_replay):
            return
        spool = self._spool()
        claimed = spool.claim() if spool is not None else None
        self._spool_drained = claimed is None
        if claimed is None:
            self._next_replay = now + REPLAY_EVERY_S
            if self._outage is not None:  # nothing to probe with (others took it): wait, do not spin
                cfg = self.config
                self._next_try = now + backoff(max(1, self._failures), cfg.retry_initial, cfg.retry_max)
            return
        path, body, count = claimed
        status, reason, answer = self._try(body)
        if 200 <= status < 300:
            spool.done(path)
            self._accepted(count, answer)
            self._answered()
            self._wake.set()  # more may be waiting: come back at once
        elif self._refused(status):
            spool.done(path)
            self._rejected(status, count)
            self._wake.set()
        else:
            spool.release(path)
            self._failed(reason)

    @staticmethod
    def _refused(status: int) -> bool:
        """The server answered and will never take this batch (it is dropped, not retried)."""
        return 400 <= status < 500 and status not in (408, 429)

    def _body(self, events: List[str]) -> bytes:
        """The gzipped POST body; with this process's drop counts when it has lost any."""
        report = ""
        counts = self.drop_counts()
        if counts:
            host = None
            try:
                host = self.host()
            except Exception:
                pass
            report = ',"producer":' + encode({"host": host, "pid": _PID["pid"], "process": self._process, "dropped": counts})
        return gzip.compress(('{"events":[' + ",".join(events) + "]" + report + "}").encode(), 1)

    def _try(self, body: bytes) -> Tuple[int, str, bytes]:
        """(HTTP status or 0, why it failed, the answer's body). A ``post`` given to the constructor
        may answer the status alone."""
        try:
            answer = self._post(body)
        except Exception as err:
            log.debug("stemtrace POST failed: %s", err)
            return 0, _reason(err), b""
        status, content = answer if isinstance(answer, tuple) else (answer, b"")
        return status, f"HTTP {status}", content

    def _accepted(self, count: int, answer: bytes) -> None:
        """A batch the server took: the events it refused one by one (its ``rejected`` list, each
        with a reason) are drops like a refused batch's, counted and logged, never resent."""
        refused: List[Dict[str, Any]] = []
        if answer:
            try:
                parsed = json.loads(answer)
                if isinstance(parsed, dict) and isinstance(parsed.get("rejected"), list):
                    refused = [r for r in parsed["rejected"] if isinstance(r, dict)]
            except ValueError:
                pass  # a proxy's page, or an older server: nothing to count
        self.sent += count - len(refused)
        if not refused:
            return
        self._drop("rejected", len(refused))
        now = time.monotonic()
        if now - self._last_reject_log >= OUTAGE_LOG_EVERY_S:
            self._last_reject_log = now
            first = refused[0]
            log.warning("stemtrace: the server at %s refused %d events of a batch (first: #%s, %s); "
                        "%d rejected in all so far", self.config.endpoint, len(refused), first.get("index", "?"),
                        first.get("error", "no reason given"), self.drops["rejected"])

    def _rejected(self, status: int, count: int) -> None:
        self.failed_batches += 1
        self._drop("rejected", count)
        now = time.monotonic()
        if now - self._last_reject_log >= OUTAGE_LOG_EVERY_S:
            self._last_reject_log = now
            log.warning("stemtrace: the server at %s rejected a batch (HTTP %s); dropped %d events "
                        "(%d rejected in all so far)", self.config.endpoint, status, count, self.drops["rejected"])

    def _failed(self, reason: str) -> None:
        """A POST failed (no answer, 5xx, 429): back off; the first failures of an outage say so, once."""
        self._failures += 1
        cfg = self.config
        self._next_try = time.monotonic() + backoff(self._failures, cfg.retry_initial, cfg.retry_max)
        outage = self._outage
        if outage is None:
            outage = self._outage = _Outage(reason, self.sent, self.dropped)
        outage.back = None  # down again while its backlog was being sent: the same outage
        outage.reason = reason
        # Logged at the second failure in a row: a single failed request is not an outage.
        if not outage.logged and self._failures >= 2:
            now = time.monotonic()
            if now - self._last_outage_log >= OUTAGE_LOG_EVERY_S:
                self._last_outage_log = now
                outage.logged = True
                where = f" and spooling to {cfg.spool_dir}" if cfg.spool_dir else ""
                log.warning("stemtrace: server unreachable at %s (%s); buffering up to %d events%s",
                            cfg.endpoint, reason, cfg.buffer_max_events, where)

    def _answered(self) -> None:
        self._failures = 0
        self._next_try = 0.0
        if self._outage is not None and self._outage.back is None:
            self._outage.back = time.monotonic()
            self._next_replay = 0.0  # what was spooled meanwhile goes next

    def _recovered(self) -> None:
        """The backlog of an outage has been sent: its one closing line."""
        outage, self._outage = self._outage, None
        if outage is None:
            return
        message = ("stemtrace: server at %s back after %.0f s; sent %d buffered events, dropped %d",
                   self.config.endpoint, (outage.back or time.monotonic()) - outage.start,
                   self.sent - outage.sent, self.dropped - outage.dropped)
        if outage.logged:
            log.warning(*message)
        else:
            log.debug(*message)

    def _http_post(self, body: bytes) -> Tuple[int, bytes]:
        """One POST over this process's kept-alive connection (a new TCP and TLS handshake per batch
        cost more than the batch). Through urllib instead when a proxy is configured for the URL."""
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "User-Agent": "stemtrace-python/0.1"}
        headers.update(self.config.auth_headers())
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
                content = res.read()
                if res.will_close:
                    self._close()
                return res.status, content
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

    def _urllib_post(self, body: bytes, headers: Dict[str, str]) -> Tuple[int, bytes]:
        req = urllib.request.Request(self.config.endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.config.timeout) as res:
                return res.status, res.read()
        except urllib.error.HTTPError as err:
            return err.code, b""

    def flush(self, timeout: float = 2.0) -> bool:
        """Sends what is queued and buffered, waiting at most ``timeout`` seconds. True when
        everything went out."""
        try:
            if not self._queue and not self._pending and not self._holding() and self._idle.is_set():
                return True
            if self._pid != _PID["pid"] or not (self._thread and self._thread.is_alive()):
                self._start()
            deadline = time.monotonic() + timeout
            self._next_try = min(self._next_try, time.monotonic())  # one attempt now, whatever the backoff
            self._flush_requested = True
            while time.monotonic() < deadline:
                self._wake.set()
                # The queue first: the sender clears _idle before it takes anything off the queue.
                if not self._queue and not self._pending and not self._holding():
                    if self._idle.wait(0.05):
                        return True
                elif self._queue:
                    time.sleep(0.001)  # not taken yet: do not spin on the GIL the sender needs
                else:
                    time.sleep(0.02)  # buffered behind a backoff
            return not self._queue and not self._pending and not self._holding()
        except Exception:
            return False

    def close(self, timeout: Optional[float] = None) -> bool:
        """The exit flush (atexit, a pool child's shutdown): sends what is left for at most
        ``timeout`` (``exit_flush_s``) seconds, then spools the rest (with a spool) or counts it as
        dropped (``exit``), and says so. True when everything went out."""
        try:
            if self._pid != _PID["pid"]:
                return True  # nothing of this process's own (a forked child's copy is its parent's)
            if timeout is None:
                timeout = self.config.exit_flush_s
            started = time.monotonic()
            if self.flush(timeout):
                return True
            self._closing = True  # the sender thread stops sending; what it has in flight may arrive twice (deduplicated)
            try:
                holds = self.holds
                if holds is not None and holds.held:
                    self._queue.extend(holds.release(True))
                self._map_queue()
                unsent = list(self._pending)
                self._pending.clear()
                self._pending_chars = 0
            finally:
                self._closing = False
            if not unsent:
                return True
            spooled = 0
            if self.config.spool_dir:
                start = 0
                while start < len(unsent):
                    end = min(len(unsent), start + self.config.batch_size)
                    while end - start > 1 and sum(map(len, unsent[start:end])) + (end - start) + 12 > MAX_BATCH_CHARS:
                        end = start + (end - start) // 2
                    if not self._to_spool(unsent[start:end]):
                        break
                    spooled += end - start
                    start = end
            lost = len(unsent) - spooled
            self._drop("exit", lost)
            why = self._outage.reason if self._outage is not None else "still sending"
            took = time.monotonic() - started
            if spooled:
                log.warning("stemtrace: exit flush sent what it could in %.1f s (%s at %s); %d events spooled to %s%s",
                            took, why, self.config.endpoint, spooled, self.config.spool_dir,
                            f", {lost} lost (the spool is full)" if lost else "")
            else:
                log.warning("stemtrace: exit flush gave up after %.1f s (%s at %s); %d events not sent "
                            "(set STEMTRACE_SPOOL_DIR to keep them, STEMTRACE_EXIT_FLUSH_S to wait longer)",
                            took, why, self.config.endpoint, lost)
            return False
        except Exception:
            log.debug("stemtrace exit flush failed", exc_info=True)
            return False

    def _holding(self) -> bool:
        return self.holds is not None and bool(self.holds.held)
