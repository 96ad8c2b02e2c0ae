"""The sender against a real HTTP server on loopback: gzipped batches, retries, drops, never raises."""
import gzip
import json
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from stemtrace.config import load_config
from stemtrace.sender import Sender


class Sink:
    """A loopback HTTP server that records the batches it receives; `fail_next` answers 503 first."""

    def __init__(self):
        self.batches = []
        self.headers = []
        self.fail_next = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if sink.fail_next:
                    sink.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                sink.headers.append(dict(self.headers))
                sink.batches.append(json.loads(gzip.decompress(body)))
                self.send_response(202)
                self.end_headers()
                self.wfile.write(b'{"accepted":1,"duplicates":0,"rejected":[]}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self):
        return [e for b in self.batches for e in b["events"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class KeepAliveSink:
    """An HTTP/1.1 server that counts the connections it accepts; ``hang_up`` closes each one after
    its first response without saying so (as an idle timeout on the server's side would)."""

    def __init__(self, hang_up=False):
        self.connections = 0
        self.events = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                sink.connections += 1
                super().setup()

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.events.extend(json.loads(gzip.decompress(body))["events"])
                reply = b'{"accepted":1,"duplicates":0,"rejected":[]}'
                self.send_response(202)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
                self.close_connection = hang_up

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def identity(rec, seq):
    return dict(rec, seq=seq)


class SenderTest(unittest.TestCase):
    def setUp(self):
        self.sink = Sink()
        self.addCleanup(self.sink.close)

    def test_batches_are_gzipped_posts_with_the_token(self):
        sender = Sender(load_config(url=self.sink.url, token="tok", flush_interval=0.05), identity)
        for i in range(120):
            sender.enqueue({"n": i})
        self.assertTrue(sender.flush(5))
        self.assertEqual([e["n"] for e in self.sink.events()], list(range(120)))
        self.assertEqual(self.sink.headers[0]["Authorization"], "Bearer tok")
        self.assertEqual(self.sink.headers[0]["Content-Encoding"], "gzip")
        self.assertEqual([e["seq"] for e in self.sink.events()][:3], [1, 2, 3])

    def test_retries_after_a_503(self):
        self.sink.fail_next = 2
        sender = Sender(load_config(url=self.sink.url, flush_interval=0.05), identity)
        sender.enqueue({"n": 1})
        self.assertTrue(sender.flush(5))
        deadline = time.time() + 5
        while not self.sink.events() and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual([e["n"] for e in self.sink.events()], [1])
        self.assertEqual(sender.failed_batches, 0)

    def test_full_queue_drops_the_oldest_and_counts(self):
        sender = Sender(load_config(url=self.sink.url, queue_size=5, batch_size=100, flush_interval=10), identity)
        sender._pid = -1  # keep the thread from draining while we fill the queue
        sender._start = lambda: None
        for i in range(8):
            sender.enqueue({"n": i})
        self.assertEqual(sender.dropped, 3)
        self.assertEqual([r["n"] for r in sender._queue], [3, 4, 5, 6, 7])

    def test_never_raises_when_stemtrace_is_down(self):
        sender = Sender(load_config(url="http://127.0.0.1:9", flush_interval=0.01, timeout=0.2), identity)
        start = time.monotonic()
        for i in range(10):
            sender.enqueue({"n": i})
        self.assertLess(time.monotonic() - start, 0.5)  # enqueueing never waits for the network
        sender.flush(0.3)  # gives up quietly

    def test_a_mapper_error_loses_only_that_event(self):
        def picky(rec, seq):
            if rec["n"] == 1:
                raise ValueError("bad record")
            return rec

        sender = Sender(load_config(url=self.sink.url, flush_interval=0.05), picky)
        for i in range(3):
            sender.enqueue({"n": i})
        self.assertTrue(sender.flush(5))
        self.assertEqual([e["n"] for e in self.sink.events()], [0, 2])

    def test_batches_stay_under_the_servers_size_limit(self):
        sender = Sender(load_config(url=self.sink.url, flush_interval=0.05), identity)
        for i in range(30):
            sender.enqueue({"n": i, "blob": "x" * 100_000})  # 3 MB in all
        self.assertTrue(sender.flush(10))
        self.assertEqual([e["n"] for e in self.sink.events()], list(range(30)))
        self.assertGreaterEqual(len(self.sink.batches), 4)
        for batch in self.sink.batches:
            self.assertLessEqual(len(json.dumps(batch, separators=(",", ":"))), 1024 * 1024)

    def test_batches_share_one_kept_alive_connection(self):
        sink = KeepAliveSink()
        self.addCleanup(sink.close)
        sender = Sender(load_config(url=sink.url, flush_interval=0.05), identity)
        for batch in range(3):
            for i in range(10):
                sender.enqueue({"n": batch * 10 + i})
            self.assertTrue(sender.flush(5))
        self.assertEqual([e["n"] for e in sink.events], list(range(30)))
        self.assertEqual(sink.connections, 1)

    def test_a_connection_the_server_closed_is_replaced_without_losing_the_batch(self):
        sink = KeepAliveSink(hang_up=True)
        self.addCleanup(sink.close)
        sender = Sender(load_config(url=sink.url, flush_interval=0.05), identity)
        for batch in range(3):
            sender.enqueue({"n": batch})
            self.assertTrue(sender.flush(5))
            time.sleep(0.05)  # let the server's hang-up land before the next batch
        self.assertEqual([e["n"] for e in sink.events], [0, 1, 2])
        self.assertEqual(sender.failed_batches, 0)
        self.assertEqual(sink.connections, 3)

    def test_a_forked_child_sends_only_its_own_events(self):
        import os

        sender = Sender(load_config(url=self.sink.url, flush_interval=0.05), identity)
        sender._post = lambda body: 202  # the parent's network is not under test here
        sender.enqueue({"n": "parent", "pid": os.getpid()})
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: what would it send?
            try:
                sent = []
                sender._post = lambda body: sent.extend(json.loads(gzip.decompress(body))["events"]) or 202
                sender.enqueue({"n": "child", "pid": os.getpid()})
                sender.flush(5)
                os.write(write, json.dumps([(e["n"], e["seq"]) for e in sent]).encode())
            finally:
                os._exit(0)
        os.close(write)
        os.waitpid(child, 0)
        with os.fdopen(read) as pipe:
            self.assertEqual(json.loads(pipe.read()), [["child", 1]])


if __name__ == "__main__":
    unittest.main()


class EndpointTest(unittest.TestCase):
    def test_the_base_url_gets_the_ingest_path(self):
        self.assertEqual(load_config(url="http://h:8787").endpoint, "http://h:8787/v1/events")
        self.assertEqual(load_config(url="https://h/stemtrace/").endpoint, "https://h/stemtrace/v1/events")

    def test_a_url_that_already_names_the_ingest_path_is_kept(self):
        self.assertEqual(load_config(url="http://h:8787/v1/events").endpoint, "http://h:8787/v1/events")
        self.assertEqual(load_config(url="http://h:8787/v1/events/").endpoint, "http://h:8787/v1/events")
