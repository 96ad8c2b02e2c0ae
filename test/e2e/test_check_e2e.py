"""`python -m stemtrace check` against a real `wrangler dev` with token auth: refused without the
token (401) and with a wrong one (403), a wrong URL (404), then accepted with the right token, and
the test task is found through the read API at the address the command printed.

Run: python3 -m unittest discover -s test/e2e -t test/e2e -p test_check_e2e.py
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

from test_celery_e2e import NODE, PYTHON, ROOT, free_port, stop, wait_for

TOKEN = "e2e-check-token"


class Server:
    """`wrangler dev` with AUTH_MODE=token on a free loopback port; stopped at the end."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="stemtrace-check-e2e-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.tmp, "wrangler.log"), "ab")
        (ROOT / "web" / "dist").mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [NODE, str(ROOT / "node_modules/wrangler/bin/wrangler.js"), "dev", "--ip", "127.0.0.1", "--port", str(self.port),
             "--inspector-port", str(free_port()), "--persist-to", os.path.join(self.tmp, "state"),
             "--var", "AUTH_MODE:token", "--var", f"INGEST_TOKEN:{TOKEN}"],
            cwd=ROOT, env=dict(os.environ, WRANGLER_SEND_METRICS="false", CLOUDFLARE_CF_FETCH_ENABLED="false", CI="1"),
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def get(self, path):
        req = urllib.request.Request(self.base + path, headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                return json.loads(res.read())
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def close(self):
        stop(self.proc)
        self.log.close()
        if os.environ.get("E2E_KEEP_LOGS"):
            print(f"e2e logs kept in {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


SERVER = None


def setUpModule():
    global SERVER
    SERVER = Server()
    try:
        wait_for("stemtrace /api/health", lambda: SERVER.get("/api/health")["auth_mode"] == "token", timeout=90)
    except Exception:
        print(open(os.path.join(SERVER.tmp, "wrangler.log"), errors="replace").read()[-3000:], file=sys.stderr)
        SERVER.close()
        raise


def tearDownModule():
    if SERVER:
        SERVER.close()


def check(url, token=None):
    """Runs the command as a user would: settings from the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMTRACE_") and k.lower() not in ("http_proxy", "https_proxy")}
    env.update(PYTHONPATH=str(ROOT / "python"), STEMTRACE_URL=url)
    if token is not None:
        env["STEMTRACE_TOKEN"] = token
    res = subprocess.run([PYTHON, "-m", "stemtrace", "check"], env=env, capture_output=True, text=True, timeout=60)
    return res.returncode, res.stdout + res.stderr


class CheckAgainstWranglerDev(unittest.TestCase):
    def test_without_the_token_it_says_to_set_it(self):
        code, out = check(SERVER.base)
        self.assertEqual(code, 1, out)
        self.assertIn("wants credentials (HTTP 401)", out)
        self.assertIn("send Authorization: Bearer <INGEST_TOKEN>", out)  # the server's own words
        self.assertIn("set STEMTRACE_TOKEN to the server's INGEST_TOKEN", out)

    def test_a_wrong_token_is_refused(self):
        code, out = check(SERVER.base, "not-the-token")
        self.assertEqual(code, 1, out)
        self.assertIn("refused these credentials (HTTP 403)", out)
        self.assertIn("the bearer token is not valid", out)

    def test_a_url_with_a_path_is_a_404_that_names_the_base_address(self):
        code, out = check(SERVER.base + "/api", TOKEN)
        self.assertEqual(code, 1, out)
        self.assertIn(f"nothing takes events at {SERVER.base}/api/v1/events (HTTP 404)", out)

    def test_with_the_token_the_event_is_accepted_and_found_where_it_says(self):
        code, out = check(SERVER.base, TOKEN)
        self.assertEqual(code, 0, out)
        self.assertIn(f"OK: {SERVER.base}/v1/events accepted a test event (with STEMTRACE_TOKEN", out)
        match = re.search(rf"See it at {re.escape(SERVER.base)}/traces/([0-9a-f-]{{36}})", out)
        self.assertIsNotNone(match, out)
        task_id = match.group(1)
        detail = wait_for(f"task {task_id}", lambda: SERVER.get(f"/api/tasks/{task_id}"))
        self.assertEqual(detail["task"]["name"], "stemtrace.check")
        self.assertEqual(detail["task"]["state"], "SUCCESS")
        self.assertEqual(detail["trace_id"], task_id)
        trace = wait_for(f"trace {task_id}", lambda: SERVER.get(f"/api/traces/{task_id}"))
        self.assertEqual([n["id"] for n in trace["nodes"]], [task_id])
        listed = wait_for("the trace in the list", lambda: [t for t in SERVER.get("/api/traces?name=stemtrace.check")["traces"]
                                                             if t["trace_id"] == task_id])
        self.assertEqual(len(listed), 1)
        # The UI page it printed is served (the SPA answers deep links).
        with urllib.request.urlopen(urllib.request.Request(f"{SERVER.base}/traces/{task_id}",
                                                           headers={"Authorization": f"Bearer {TOKEN}"}), timeout=10) as res:
            self.assertEqual(res.status, 200)


if __name__ == "__main__":
    unittest.main()
