"""Nothing lost: the sender against a real loopback HTTP server that is stopped and started again —
the outage buffer and its bounds, the backoff, the disk spool, the exit flush, the drop report,
the outage log lines, and JSON that stays valid whatever a task returns."""
import gzip
import json
import logging
import math
import os
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from stemtrace.config import load_config
from stemtrace.jsonsafe import encode
from stemtrace.mapping import Mapper
from stemtrace.scrub import Scrubber
from stemtrace.sender import Sender, backoff
from stemtrace.spool import Spool


def strict_json(text):
    """json.loads that refuses NaN/Infinity, as the server's JSON.parse does."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


class RestartableSink:
    """A loopback HTTP server on a fixed port that can be stopped (connections refused) and started
    again; it parses bodies strictly and answers 400 to invalid JSON, as the server does."""

    def __init__(self):
        self.batches = []
        self.lock = threading.Lock()
        self.server = None
        self.port = None
        self.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    batch = strict_json(gzip.decompress(body))
                    status = 202
                except ValueError:
                    batch, status = None, 400
                if batch is not None:
                    with sink.lock:
                        sink.batches.append(batch)
                # Events marked "bad" are refused one by one, as the server refuses an invalid event
                # while keeping the rest of its batch.
                events = batch["events"] if batch is not None else []
                refused = [{"index": i, "error": "ts: out of range"} for i, e in enumerate(events) if e.get("bad")]
                reply = json.dumps({"accepted": len(events) - len(refused), "duplicates": 0,
                                    "rejected": refused}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port or 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self):
        with self.lock:
            return [e for b in self.batches for e in b["events"]]

    def numbers(self):
        return sorted(e["n"] for e in self.events())


def identity(rec, seq):
    return dict(rec, seq=seq, id=f"{os.getpid()}-{seq}")


def wait_until(what, check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class OutageTest(unittest.TestCase):
    def setUp(self):
        self.sink = RestartableSink()
        self.addCleanup(self.sink.stop)

    def sender(self, **options):
        options.setdefault("flush_interval", 0.02)
        options.setdefault("retry_initial", 0.02)
        options.setdefault("retry_max", 0.1)
        sender = Sender(load_config(url=self.sink.url, **options), identity)
        self.addCleanup(sender.close, 0)
        return sender

    def test_an_outage_loses_nothing_within_the_bound(self):
        sender = self.sender()
        self.sink.stop()
        for i in range(500):
            sender.enqueue({"n": i})
        wait_until("a failed attempt", lambda: sender._failures >= 3)
        self.assertEqual(sender.sent, 0)
        self.sink.start()
        self.assertTrue(sender.flush(10))
        self.assertEqual(self.sink.numbers(), list(range(500)))
        self.assertEqual(sender.dropped, 0)
        self.assertEqual(sender.drop_counts(), {})

    def test_a_full_buffer_drops_the_oldest_counts_them_and_reports_them(self):
        sender = self.sender(buffer_max_events=50)
        self.sink.stop()
        for i in range(120):
            sender.enqueue({"n": i})
        wait_until("the buffer to fill", lambda: sender.dropped == 70 and sender._failures >= 1)
        self.assertEqual(len(sender._pending), 50)
        self.sink.start()
        self.assertTrue(sender.flush(10))
        self.assertEqual(self.sink.numbers(), list(range(70, 120)))  # the newest 50
        self.assertEqual(sender.drop_counts(), {"buffer_full": 70})
        report = self.sink.batches[0]["producer"]
        self.assertEqual(report["pid"], os.getpid())
        self.assertEqual(report["dropped"], {"buffer_full": 70})

    def test_the_buffer_is_bounded_by_bytes_too(self):
        sender = self.sender(buffer_max_bytes=10_000)
        self.sink.stop()
        for i in range(30):
            sender.enqueue({"n": i, "blob": "x" * 1000})
        wait_until("the buffer to fill", lambda: sender._failures >= 1 and not sender._queue)
        self.assertLessEqual(sender._pending_chars, 10_000)
        kept = len(sender._pending)
        self.assertEqual(sender.drop_counts(), {"buffer_full": 30 - kept})
        self.sink.start()
        self.assertTrue(sender.flush(10))
        self.assertEqual(self.sink.numbers(), list(range(30 - kept, 30)))

    def test_no_drops_are_reported_while_there_are_none(self):
        sender = self.sender()
        sender.enqueue({"n": 1})
        self.assertTrue(sender.flush(5))
        self.assertNotIn("producer", self.sink.batches[0])

    def test_one_line_when_the_outage_starts_and_one_when_its_backlog_is_sent(self):
        sender = self.sender(retry_initial=0.005, retry_max=0.01)
        with self.assertLogs("stemtrace", logging.WARNING) as logs:
            self.sink.stop()
            sender.enqueue({"n": 0})
            wait_until("many failed attempts", lambda: sender._failures >= 20)
            for i in range(1, 10):
                sender.enqueue({"n": i})
            wait_until("more failed attempts", lambda: sender._failures >= 40)
            self.sink.start()
            self.assertTrue(sender.flush(10))
            wait_until("the outage to end", lambda: sender._outage is None)
        self.assertEqual(len(logs.output), 2, logs.output)
        self.assertIn(f"server unreachable at {self.sink.url}/v1/events (connection refused); buffering up to 100000 events",
                      logs.output[0])
        self.assertRegex(logs.output[1], r"back after \d+ s; sent 10 buffered events, dropped 0$")

    def test_rejected_batches_are_dropped_and_counted(self):
        sender = Sender(load_config(url=self.sink.url, flush_interval=0.02), lambda rec, seq: rec)
        self.addCleanup(sender.close, 0)
        sender._post = lambda body: 401
        with self.assertLogs("stemtrace", logging.WARNING) as logs:
            sender.enqueue({"n": 1})
            sender.enqueue({"n": 2})
            self.assertTrue(sender.flush(5))
        self.assertEqual(sender.drop_counts(), {"rejected": 2})
        self.assertIn("rejected a batch (HTTP 401); dropped 2 events", logs.output[0])


    def test_events_refused_inside_an_accepted_batch_are_counted_logged_and_reported(self):
        sender = self.sender()
        with self.assertLogs("stemtrace", logging.WARNING) as logs:
            for i in range(4):
                sender.enqueue({"n": i, "bad": i in (1, 3)})
            self.assertTrue(sender.flush(5))
        self.assertEqual(sender.sent, 2)
        self.assertEqual(sender.drop_counts(), {"rejected": 2})
        self.assertIn("refused 2 events of a batch (first: #1, ts: out of range)", logs.output[0])
        # Never resent, and the next batch tells the server what was lost.
        sender.enqueue({"n": 4})
        self.assertTrue(sender.flush(5))
        self.assertEqual(self.sink.numbers(), [0, 1, 2, 3, 4])
        self.assertEqual(self.sink.batches[-1]["producer"]["dropped"], {"rejected": 2})


class BackoffTest(unittest.TestCase):
    def test_doubles_up_to_the_cap(self):
        lows = [backoff(n, 0.5, 15, rand=lambda: 0.0) for n in range(1, 9)]
        highs = [backoff(n, 0.5, 15, rand=lambda: 1.0) for n in range(1, 9)]
        self.assertEqual(highs, [0.5, 1, 2, 4, 8, 15, 15, 15])
        self.assertEqual(lows, [h / 2 for h in highs])

    def test_jitter_spreads_the_retries(self):
        draws = {round(backoff(4, 0.5, 15), 6) for _ in range(50)}
        self.assertGreater(len(draws), 40)
        self.assertTrue(all(2 <= d <= 4 for d in draws))

    def test_huge_failure_counts_stay_at_the_cap(self):
        self.assertLessEqual(backoff(10_000, 0.5, 15), 15)


class SpoolTest(unittest.TestCase):
    def setUp(self):
        self.sink = RestartableSink()
        self.addCleanup(self.sink.stop)
        self.dir = tempfile.mkdtemp(prefix="stemtrace-spool-")

    def sender(self, **options):
        config = load_config(url=self.sink.url, flush_interval=0.02, retry_initial=0.02, retry_max=0.1,
                             spool_dir=self.dir, **options)
        sender = Sender(config, identity)
        self.addCleanup(sender.close, 0)
        return sender

    def files(self):
        return sorted(os.listdir(self.dir))

    def test_an_outage_goes_to_disk_and_a_restarted_process_sends_it(self):
        self.sink.stop()
        first = self.sender()
        for i in range(250):
            first.enqueue({"n": i})
        wait_until("the buffer on disk", lambda: first.spooled == 250)
        self.assertEqual(len(first._pending), 0)
        self.assertTrue(all(name.endswith(".json.gz") for name in self.files()), self.files())
        self.assertTrue(first.close(0))  # nothing left in memory to lose
        self.assertEqual(first.dropped, 0)
        # A "restart": a new sender on the same directory, the server back.
        self.sink.start()
        second = self.sender()
        second.enqueue({"n": 250})
        self.assertTrue(second.flush(5))
        wait_until("the spool replayed", lambda: len(self.sink.events()) == 251)
        self.assertEqual(self.sink.numbers(), list(range(251)))
        wait_until("the spool emptied", lambda: self.files() == [])

    def test_the_exit_flush_spools_what_it_could_not_send(self):
        self.sink.stop()
        sender = self.sender()
        sender._spool_all = lambda: None  # keep the outage's events in memory until exit
        for i in range(40):
            sender.enqueue({"n": i})
        wait_until("a failed attempt", lambda: sender._failures >= 1)
        with self.assertLogs("stemtrace", logging.WARNING) as logs:
            self.assertFalse(sender.close(0.2))
        self.assertIn(f"40 events spooled to {self.dir}", logs.output[-1])
        self.assertEqual(sender.dropped, 0)
        self.sink.start()
        replay = self.sender()
        replay.ensure_thread()
        wait_until("the spool replayed", lambda: len(self.sink.events()) == 40)
        self.assertEqual(self.sink.numbers(), list(range(40)))

    def test_an_outage_with_an_empty_spool_waits_instead_of_spinning(self):
        self.sink.stop()
        sender = self.sender()
        sender.enqueue({"n": 1})
        wait_until("the buffer on disk", lambda: sender.spooled == 1)

        def another_process_takes_everything():
            # The sender may be holding the batch (claimed, renamed) at this moment: it releases it
            # after its failed attempt, so this keeps taking until the directory stays empty.
            for name in self.files():
                try:
                    os.unlink(os.path.join(self.dir, name))
                except FileNotFoundError:
                    pass  # renamed by the sender meanwhile
            return self.files() == []

        wait_until("the spool taken by another process", another_process_takes_everything)
        spool = sender._spool()
        claims = []
        claim = spool.claim
        spool.claim = lambda: claims.append(1) or claim()
        time.sleep(0.5)
        self.assertLess(len(claims), 50)  # a spinning thread would make thousands

    def test_the_spool_is_bounded_oldest_first_and_counts_what_it_evicts(self):
        spool = Spool(self.dir, max_bytes=1000)
        for i in range(10):
            written, _ = spool.write([json.dumps({"n": i, "pad": os.urandom(100).hex()})])
            self.assertTrue(written)
        files, events = spool.pending()
        self.assertLess(files, 10)
        kept = []
        while (claimed := spool.claim()) is not None:
            kept.append(json.loads(gzip.decompress(claimed[1]))["events"][0]["n"])
            spool.done(claimed[0])
        self.assertEqual(kept, list(range(10 - files, 10)))  # the newest survive

    def test_processes_sharing_the_spool_send_each_batch_once(self):
        spool = Spool(self.dir, max_bytes=10_000_000)
        for i in range(60):
            spool.write([json.dumps({"n": i, "id": f"e{i}"})])
        children = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                try:
                    sender = Sender(load_config(url=self.sink.url, flush_interval=0.01, spool_dir=self.dir), identity)
                    sender.ensure_thread()
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline and Spool(self.dir, 1).pending()[0]:
                        time.sleep(0.01)
                    time.sleep(0.2)  # a claim in flight finishes
                finally:
                    os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        self.assertEqual(self.sink.numbers(), list(range(60)))  # each exactly once
        self.assertEqual(self.files(), [])

    def test_a_claim_of_a_process_that_died_goes_back_to_the_spool(self):
        spool = Spool(self.dir, max_bytes=10_000_000)
        spool.write([json.dumps({"n": 1})])
        pid = os.fork()
        if pid == 0:
            Spool(self.dir, 10_000_000).claim()  # claims, then dies without sending
            os._exit(0)
        os.waitpid(pid, 0)
        self.assertTrue(any(".claimed-" in name for name in self.files()))
        claimed = spool.claim()
        self.assertIsNotNone(claimed)
        self.assertEqual(json.loads(gzip.decompress(claimed[1]))["events"], [{"n": 1}])


class ExitFlushTest(unittest.TestCase):
    def setUp(self):
        self.sink = RestartableSink()
        self.addCleanup(self.sink.stop)

    def test_a_burst_at_exit_is_sent_whole(self):
        sender = Sender(load_config(url=self.sink.url, queue_size=10_000), identity)
        for i in range(1000):
            sender.enqueue({"n": i, "pad": "p" * 200})
        self.assertTrue(sender.close(30))
        self.assertEqual(self.sink.numbers(), list(range(1000)))

    def test_the_deadline_is_kept_and_what_is_lost_is_said_and_counted(self):
        self.sink.stop()
        sender = Sender(load_config(url=self.sink.url, flush_interval=0.02, retry_initial=0.02, retry_max=0.05), identity)
        for i in range(25):
            sender.enqueue({"n": i})
        with self.assertLogs("stemtrace", logging.WARNING) as logs:
            started = time.monotonic()
            self.assertFalse(sender.close(0.3))
            took = time.monotonic() - started
        self.assertGreaterEqual(took, 0.3)
        self.assertIn("exit flush gave up after 0.3 s (connection refused", logs.output[-1])
        self.assertIn("25 events not sent", logs.output[-1])
        self.assertEqual(sender.drop_counts(), {"exit": 25})

    def test_the_deadline_comes_from_the_environment(self):
        previous = os.environ.get("STEMTRACE_EXIT_FLUSH_S")
        os.environ["STEMTRACE_EXIT_FLUSH_S"] = "3.5"
        self.addCleanup(lambda: os.environ.pop("STEMTRACE_EXIT_FLUSH_S") if previous is None
                        else os.environ.__setitem__("STEMTRACE_EXIT_FLUSH_S", previous))
        self.assertEqual(load_config().exit_flush_s, 3.5)
        self.assertEqual(load_config(exit_flush_s=1).exit_flush_s, 1.0)


class NonFiniteFloatsTest(unittest.TestCase):
    def test_nan_and_infinities_are_marked_values(self):
        text = encode({"result": float("nan"), "args": [float("inf"), -math.inf, 1.5, {"x": (math.nan,)}]})
        self.assertEqual(strict_json(text), {
            "result": {"__float__": "NaN"},
            "args": [{"__float__": "Infinity"}, {"__float__": "-Infinity"}, 1.5, {"x": [{"__float__": "NaN"}]}],
        })

    def test_finite_values_are_written_as_json_always_wrote_them(self):
        value = {"a": [1, 2.5, "s", None, True], "b": {"c": 1e300}}
        self.assertEqual(encode(value), json.dumps(value, separators=(",", ":")))

    def test_a_task_returning_nan_loses_nothing(self):
        sink = RestartableSink()
        self.addCleanup(sink.stop)
        mapper = Mapper(Scrubber())
        sender = Sender(load_config(url=sink.url, flush_interval=0.02), mapper)
        self.addCleanup(sender.close, 0)
        for i in range(200):
            # The general path (a record) and the hot path's fragments with values left to scrub.
            sender.enqueue({"signal": "task_success", "ts": 1.0, "pid": 1, "nodename": "w@h", "task_id": f"t{i}",
                            "task_name": "x", "request": {"id": f"t{i}"}, "result": float("nan")})
            sender.enqueue(('"kind":"task","type":"published","ts":1.0,"task_id":"p%d","name":"x"' % i,
                            (("args", [float("inf")]), ("kwargs", {"k": -math.inf}))))
        self.assertTrue(sender.flush(10))
        events = sink.events()
        self.assertEqual(len(events), 400)
        self.assertEqual(sender.dropped, 0)
        published = [e for e in events if e["type"] == "published"]
        self.assertEqual(published[0]["args"], [{"__float__": "Infinity"}])
        self.assertEqual(published[0]["kwargs"], {"k": {"__float__": "-Infinity"}})
        succeeded = [e for e in events if e["type"] == "succeeded"]
        self.assertEqual(len(succeeded), 200)
        self.assertEqual(succeeded[0].get("result"), {"__float__": "NaN"})


if __name__ == "__main__":
    unittest.main()
