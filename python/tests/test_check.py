"""``python -m stemtrace check`` against a real loopback HTTP server that answers what each test
sets: the request it sends (the producer's headers, a valid event), and the words and exit status
for success and for every kind of failure."""
import gzip
import io
import json
import os
import socket
import subprocess
import sys
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from stemtrace.check import CHECK_TASK, main, run_check
from stemtrace.config import load_config

from .test_wire_schema import NODE, validate

ROOT = Path(__file__).resolve().parents[2]


class Server:
    """Records each request (path, headers, decoded body) and answers (status, body, headers)."""

    def __init__(self):
        self.requests = []
        self.answer = (202, {"accepted": 3, "duplicates": 0, "rejected": []}, {})
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                server.requests.append((self.path, dict(self.headers), json.loads(body)))
                status, payload, headers = server.answer
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def error(code, message):
    return {"error": {"code": code, "message": message}}


class CheckTest(unittest.TestCase):
    def setUp(self):
        self.server = Server()
        self.addCleanup(self.server.close)
        # The tests' own settings only: a proxy from the environment would intercept 127.0.0.1.
        for key in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "STEMTRACE_URL", "STEMTRACE_TOKEN"):
            if key in os.environ:
                self.addCleanup(os.environ.__setitem__, key, os.environ.pop(key))

    def check(self, answer=None, url=None, token=None, timeout=5.0):
        if answer is not None:
            self.server.answer = answer
        out = io.StringIO()
        status = main(load_config(url=url or self.server.url, token=token), timeout, out)
        return status, out.getvalue()

    def test_success_prints_the_trace_page_and_sends_what_the_producer_sends(self):
        status, text = self.check(token="s3cret")
        self.assertEqual(status, 0, text)
        self.assertEqual(len(self.server.requests), 1)
        path, headers, body = self.server.requests[0]
        self.assertEqual(path, "/v1/events")
        self.assertEqual(headers["Authorization"], "Bearer s3cret")
        self.assertEqual(headers["Content-Type"], "application/json")
        (event,) = body["events"]
        self.assertEqual(event["name"], CHECK_TASK)
        self.assertEqual(event["trace_id"], event["task_id"])
        self.assertIn(f"OK: {self.server.url}/v1/events accepted a test event (with STEMTRACE_TOKEN", text)
        self.assertIn(f"See it at {self.server.url}/traces/{event['task_id']}", text)
        self.assertNotIn("s3cret", text)  # the token is never printed

    @unittest.skipUnless(NODE.exists() and (ROOT / "node_modules" / "zod").exists(), "needs npm install (Node 22 + zod)")
    def test_the_event_is_valid_under_the_wire_contract(self):
        self.check()
        self.assertEqual(validate({"check": self.server.requests[0][2]["events"]}), {"check": []})

    def test_without_a_token_no_authorization_header(self):
        status, text = self.check()
        self.assertEqual(status, 0, text)
        self.assertNotIn("Authorization", self.server.requests[0][1])
        self.assertIn("without a token", text)

    def test_a_base_url_with_a_trailing_slash_or_path_prefix(self):
        status, _ = self.check(url=self.server.url + "/stemtrace/")
        self.assertEqual(status, 0)
        self.assertEqual(self.server.requests[0][0], "/stemtrace/v1/events")

    def test_401_without_a_token_says_to_set_stemtrace_token(self):
        status, text = self.check((401, error("unauthorized", "send Authorization: Bearer <INGEST_TOKEN> (AUTH_MODE=token)"), {}))
        self.assertEqual(status, 1)
        self.assertIn("wants credentials (HTTP 401)", text)
        self.assertIn("the server said: unauthorized: send Authorization", text)
        self.assertIn("set STEMTRACE_TOKEN to the server's INGEST_TOKEN", text)

    def test_401_when_the_server_has_no_auth_configured_says_so(self):
        status, text = self.check((401, error("auth_not_configured", "stemtrace refuses requests until auth is configured"), {}))
        self.assertEqual(status, 1)
        self.assertIn("Fix (on the server): set AUTH_MODE", text)

    def test_403_with_a_token_says_it_does_not_match(self):
        status, text = self.check((403, error("forbidden", "the bearer token is not valid"), {}), token="wrong")
        self.assertEqual(status, 1)
        self.assertIn("refused these credentials (HTTP 403)", text)
        self.assertIn("must equal the server's INGEST_TOKEN exactly", text)

    def test_404_says_the_url_is_the_base_address(self):
        status, text = self.check((404, error("not_found", "no route"), {}), url=self.server.url + "/api")
        self.assertEqual(status, 1)
        self.assertIn(f"nothing takes events at {self.server.url}/api/v1/events (HTTP 404)", text)
        self.assertIn("without /v1/events,", text)

    def test_415_says_headers_were_rewritten(self):
        status, text = self.check((415, error("unsupported_media_type", "Content-Type must be application/json"), {}))
        self.assertEqual(status, 1)
        self.assertIn("refused the body's type (HTTP 415)", text)

    def test_5xx_says_the_server_is_up_but_failing(self):
        status, text = self.check((503, error("auth_misconfigured", "AUTH_MODE=access needs ACCESS_AUD"), {}))
        self.assertEqual(status, 1)
        self.assertIn("answered HTTP 503: the server is up but could not take events now", text)
        self.assertIn("AUTH_MODE=access needs ACCESS_AUD", text)

    def test_a_redirect_is_reported_not_followed(self):
        status, text = self.check((302, b"", {"Location": "https://team.cloudflareaccess.com/cdn-cgi/access/login"}))
        self.assertEqual(status, 1)
        self.assertEqual(len(self.server.requests), 1)
        self.assertIn("redirected (HTTP 302) to https://team.cloudflareaccess.com/cdn-cgi/access/login", text)

    def test_a_200_that_is_not_stemtrace(self):
        status, text = self.check((200, b"<html>welcome</html>", {"Content-Type": "text/html"}))
        self.assertEqual(status, 1)
        self.assertIn("but not as stemtrace does", text)

    def test_a_rejected_event_says_why(self):
        answer = {"accepted": 0, "duplicates": 0, "rejected": [{"index": 0, "error": "ts: 3 days ahead of the server's clock"}]}
        status, text = self.check((202, answer, {}))
        self.assertEqual(status, 1)
        self.assertIn("refused the test event: ts: 3 days ahead of the server's clock", text)

    def test_connection_refused(self):
        with socket.socket() as s:  # a port nothing listens on: bound, never listening
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            status, text = self.check(url=f"http://127.0.0.1:{port}")
        self.assertEqual(status, 1)
        self.assertIn(f"nothing is listening at 127.0.0.1:{port} (connection refused)", text)
        self.assertIn("npm start", text)

    def test_a_host_that_does_not_resolve(self):
        # .invalid never resolves (RFC 6761).
        status, text = self.check(url="http://stemtrace.invalid:8787")
        self.assertEqual(status, 1)
        self.assertIn("cannot resolve the host 'stemtrace.invalid'", text)

    def test_no_answer_within_the_timeout(self):
        with socket.socket() as s:  # listens, never accepts: the request waits for an answer
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            status, text = self.check(url=f"http://127.0.0.1:{s.getsockname()[1]}", timeout=0.5)
        self.assertEqual(status, 1)
        self.assertIn("no answer from", text)

    def test_not_an_http_url(self):
        outcome = run_check(load_config(url="127.0.0.1:8787"))
        self.assertFalse(outcome.ok)
        self.assertIn("is not an http(s) address", outcome.lines[0])

    def test_the_command_line_reads_the_environment_and_exits_non_zero_on_failure(self):
        env = dict(os.environ, STEMTRACE_URL=self.server.url, STEMTRACE_TOKEN="from-env", PYTHONPATH=str(ROOT / "python"))
        ok = subprocess.run([sys.executable, "-m", "stemtrace", "check"], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertEqual(self.server.requests[-1][1]["Authorization"], "Bearer from-env")
        self.assertIn("See it at", ok.stdout)
        self.server.answer = (401, error("unauthorized", "no"), {})
        bad = subprocess.run([sys.executable, "-m", "stemtrace", "check", "--token", ""], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("HTTP 401", bad.stdout)
        usage = subprocess.run([sys.executable, "-m", "stemtrace"], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(usage.returncode, 2)
        self.assertIn("check", usage.stderr)


if __name__ == "__main__":
    unittest.main()


class AccessServiceTokenTest(unittest.TestCase):
    def test_access_service_token_headers_come_from_the_environment(self):
        from stemtrace.config import load_config

        saved = {k: os.environ.get(k) for k in ("STEMTRACE_ACCESS_CLIENT_ID", "STEMTRACE_ACCESS_CLIENT_SECRET", "STEMTRACE_TOKEN")}
        try:
            os.environ.update(STEMTRACE_ACCESS_CLIENT_ID="abc.access", STEMTRACE_ACCESS_CLIENT_SECRET="s3cret")
            os.environ.pop("STEMTRACE_TOKEN", None)
            self.assertEqual(load_config().auth_headers(), {"CF-Access-Client-Id": "abc.access", "CF-Access-Client-Secret": "s3cret"})
            os.environ["STEMTRACE_TOKEN"] = "tok"
            self.assertEqual(load_config().auth_headers()["Authorization"], "Bearer tok")
            os.environ.pop("STEMTRACE_ACCESS_CLIENT_SECRET")
            self.assertNotIn("CF-Access-Client-Id", load_config().auth_headers())  # half a service token is none
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
