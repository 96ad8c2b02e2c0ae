"""OpenTelemetry export end to end (docs/otlp.md): a real Celery worker and client with the producer,
stemtrace under `wrangler dev` with OTLP_ENDPOINT set, and an OTLP/HTTP JSON receiver on loopback in
this process. A chord published inside `stemtrace.traceparent(...)` (a web request's trace) arrives
as spans of that trace; a retried task as one span per attempt.

Run: python3 -m unittest discover -s test/e2e -t test/e2e -p test_otlp_e2e.py   (npm test runs it)
"""
import json
import os
import subprocess
import sys
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from test_celery_e2e import HERE, NODE, PYTHON, ROOT, Stack, free_port, wait_for

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


class Receiver:
    """Takes POST /v1/traces (OTLP JSON) and keeps every span by trace id."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = self.path == "/v1/traces" and self.headers.get("Content-Type", "").startswith("application/json")
                if ok:
                    with receiver.lock:
                        receiver.requests.append({"headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"partialSuccess":{}}' if ok else b'{"error":"expected POST /v1/traces JSON"}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self, trace_id):
        with self.lock:
            bodies = [r["body"] for r in self.requests]
        return [s for b in bodies for rs in b["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]
                if s["traceId"] == trace_id]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class OtlpStack(Stack):
    """The e2e stack with the export on, to `receiver`, a second after a trace settles."""

    def __init__(self, receiver):
        super().__init__()
        self.receiver = receiver

    def start(self):
        self.procs.append(subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=self.log("redis"), stderr=subprocess.STDOUT, start_new_session=True))
        (ROOT / "web" / "dist").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, WRANGLER_SEND_METRICS="false", CI="1")
        self.procs.append(subprocess.Popen(
            [NODE, str(ROOT / "node_modules/wrangler/bin/wrangler.js"), "dev", "--ip", "127.0.0.1", "--port", str(self.http_port),
             "--inspector-port", str(free_port()), "--persist-to", os.path.join(self.tmp, "state"),
             "--var", f"OTLP_ENDPOINT:http://127.0.0.1:{self.receiver.port}/v1/traces",
             "--var", "OTLP_SETTLE_S:1", "--var", "OTLP_SERVICE_NAME:e2e-otlp",
             "--var", "OTLP_HEADERS:x-e2e=yes"],
            cwd=ROOT, env=env, stdout=self.log("wrangler"), stderr=subprocess.STDOUT, start_new_session=True))
        wait_for("stemtrace /api/health", lambda: self.get("/api/health")["ok"], timeout=90)
        os.environ["E2E_BROKER"] = f"redis://127.0.0.1:{self.redis_port}/0"
        os.environ["STEMTRACE_URL"] = self.base
        self.start_celery("otlp@localhost", ["-P", "prefork", "-c", "2"])


RECEIVER = None
STACK = None


def setUpModule():
    global RECEIVER, STACK
    RECEIVER = Receiver()
    STACK = OtlpStack(RECEIVER)
    try:
        STACK.start()
    except Exception:
        for name in ("wrangler", "otlp"):
            path = os.path.join(STACK.tmp, f"{name}.log")
            if os.path.exists(path):
                print(f"--- {name} log ---\n" + open(path, errors="replace").read()[-3000:], file=sys.stderr)
        STACK.stop()
        RECEIVER.stop()
        raise


def tearDownModule():
    if STACK:
        STACK.stop()
    if RECEIVER:
        RECEIVER.stop()


def attrs(span):
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


class OtlpEndToEnd(unittest.TestCase):
    def test_a_chord_from_a_traced_request_and_a_retried_task(self):
        # A client process (as a web app would be): its own producer, this stack's broker and server.
        env = dict(os.environ, PYTHONPATH=f"{ROOT / 'python'}:{HERE}")
        code = ("import json, e2e_app, stemtrace\n"
                "from celery import chord\n"
                f"with stemtrace.traceparent({TRACEPARENT!r}):\n"
                "    r = chord([e2e_app.add.s(i, i) for i in range(3)], e2e_app.tsum.s()).apply_async()\n"
                "f = e2e_app.flaky.delay(2)\n"
                "print(json.dumps({'callback': r.id, 'sum': r.get(timeout=60), 'flaky': f.id, 'ok': f.get(timeout=60)}))\n"
                "e2e_app.app.close()\n")
        out = subprocess.run([PYTHON, "-c", code], cwd=HERE, env=env, timeout=180, check=True, capture_output=True, text=True)
        ids = json.loads(out.stdout.strip().splitlines()[-1])
        self.assertEqual(ids["sum"], 6)

        # The chord: in the request's trace, 3 header spans and the callback, linked to all of them.
        spans = wait_for("the chord's spans", lambda: (lambda s: s if len(s) >= 4 else None)(RECEIVER.spans(TRACE_ID)),
                         timeout=90)
        by_task = {attrs(s)["celery.task_id"]: s for s in spans}
        self.assertEqual(len(by_task), 4)
        callback = by_task[ids["callback"]]
        headers = [s for t, s in by_task.items() if t != ids["callback"]]
        self.assertEqual(attrs(callback)["celery.task_name"], "e2e.tsum")
        self.assertEqual({attrs(s)["celery.task_name"] for s in headers}, {"e2e.add"})
        self.assertEqual(sorted(link["spanId"] for link in callback["links"]), sorted(s["spanId"] for s in headers))
        chord_id = attrs(headers[0])["celery.group_id"]
        for s in spans:
            # A client's chord: no task published it, so every span hangs from the request's span.
            self.assertEqual(s["parentSpanId"], PARENT_SPAN)
            self.assertEqual(attrs(s)["celery.chord_id"], chord_id)
            self.assertEqual(attrs(s)["celery.state"], "SUCCESS")
            self.assertEqual(attrs(s)["celery.worker"], "otlp@localhost")
        with RECEIVER.lock:
            request = next(r for r in RECEIVER.requests if r["body"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == TRACE_ID)
        self.assertEqual(request["headers"].get("x-e2e"), "yes")
        self.assertIn({"key": "service.name", "value": {"stringValue": "e2e-otlp"}},
                      request["body"]["resourceSpans"][0]["resource"]["attributes"])

        # The retried task: its own trace (its id's hex), one span per attempt, each retry under the run before.
        flaky_trace = ids["flaky"].replace("-", "")
        attempts = wait_for("the retried task's spans",
                            lambda: (lambda s: s if len(s) >= 3 else None)(RECEIVER.spans(flaky_trace)), timeout=90)
        attempts = sorted(attempts, key=lambda s: int(attrs(s)["celery.retries"]))
        self.assertEqual([attrs(s)["celery.state"] for s in attempts], ["RETRY", "RETRY", "SUCCESS"])
        self.assertNotIn("parentSpanId", attempts[0])
        self.assertEqual(attempts[1]["parentSpanId"], attempts[0]["spanId"])
        self.assertEqual(attempts[2]["parentSpanId"], attempts[1]["spanId"])
        exception = next(e for e in attempts[0]["events"] if e["name"] == "exception")
        self.assertIn({"key": "exception.type", "value": {"stringValue": "ConnectionError"}}, exception["attributes"])

        health = STACK.get("/api/health")
        self.assertGreaterEqual(health["otlp"]["exported_traces"], 2)
        self.assertEqual(health["otlp"]["given_up"], 0)


if __name__ == "__main__":
    unittest.main()
