"""``python -m stemtrace check``: send one test event to the configured server and say what happened.

It reads the same settings as the producer (``STEMTRACE_URL``, ``STEMTRACE_TOKEN``; ``load_config``)
and POSTs the way the sender does (gzipped JSON, ``Authorization: Bearer``), so a check that passes
means a producer with these settings can send. The event is one finished task, ``stemtrace.check``,
in its own trace; on success the trace's page in the UI is printed. On failure the message says
what was wrong and how to fix it, and the exit status is non-zero.
"""
from __future__ import annotations

import gzip
import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, TextIO

from .config import Config
from .jsonsafe import encode

#: The test task's name (it appears in the trace list and the registry under this name).
CHECK_TASK = "stemtrace.check"
USER_AGENT = "stemtrace-python/0.1 (check)"


@dataclass
class Outcome:
    ok: bool
    #: What to print: one or more lines.
    lines: List[str]
    trace_id: str
    ui_url: str


def test_event(task_id: str, now: Optional[float] = None) -> Dict[str, Any]:
    """One task that ran and succeeded, as a coalesced end event (received and started folded in):
    it shows as a finished one-task trace, never as pending or stuck."""
    ts = time.time() if now is None else now
    host = f"stemtrace-check@{socket.gethostname()}"
    return {
        "v": 1,
        "id": f"{task_id}:check",
        "ts": ts,
        "seq": 1,
        "host": host,
        "pid": os.getpid(),
        "kind": "task",
        "type": "succeeded",
        "task_id": task_id,
        "name": CHECK_TASK,
        "trace_id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "retries": 0,
        "args": [],
        "kwargs": {"sent_by": "python -m stemtrace check"},
        "result": "ok",
        "state": "SUCCESS",
        "runtime_ms": 0.0,
        "received_ts": ts,
        "started_ts": ts,
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is reported, not followed: urllib would turn the POST into a GET of a sign-in page."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 (urllib's hook)
        return None


def _server_message(body: bytes) -> str:
    """The server's own words from its error shape ``{"error": {"code", "message"}}``, else ""."""
    try:
        err = json.loads(body.decode("utf-8", "replace")).get("error") or {}
        return f"{err.get('code', 'error')}: {err.get('message', '')}".strip()
    except Exception:
        return ""


def _explain_status(status: int, body: bytes, endpoint: str, token_set: bool, location: str) -> List[str]:
    said = _server_message(body)
    server = [f"  the server said: {said}"] if said else []
    if status in (301, 302, 303, 307, 308):
        return [f"FAILED: {endpoint} redirected (HTTP {status}) to {location or 'another address'}."] + server + [
            "  A sign-in page (Cloudflare Access) or an http→https redirect is in the way. Fix: use the final",
            "  address in STEMTRACE_URL (https:// if the site redirects there); behind Access, let /v1/* through",
            "  with a bypass or service-token policy and set STEMTRACE_TOKEN to the Worker's INGEST_TOKEN.",
        ]
    if status == 401:
        fix = ("  Fix: STEMTRACE_TOKEN is set but was not accepted as the ingest token; check the server's AUTH_MODE and INGEST_TOKEN."
               if token_set else
               "  Fix: set STEMTRACE_TOKEN to the server's INGEST_TOKEN (wrangler secret put INGEST_TOKEN; AUTH_MODE=token or access).")
        if "auth_not_configured" in said:
            fix = "  Fix (on the server): set AUTH_MODE to 'token' (with INGEST_TOKEN), 'access', or 'none' on purpose (README \"Security\")."
        return [f"FAILED: {endpoint} wants credentials (HTTP 401)."] + server + [fix]
    if status == 403:
        fix = ("  Fix: STEMTRACE_TOKEN must equal the server's INGEST_TOKEN exactly (no quotes, no trailing newline)."
               if token_set else
               "  Fix: set STEMTRACE_TOKEN to the server's INGEST_TOKEN (people signed in through Access may read; only"
               " the ingest token or a service token may send events).")
        return [f"FAILED: {endpoint} refused these credentials (HTTP 403)."] + server + [fix]
    if status in (404, 405):
        base = endpoint[: -len("/v1/events")] if endpoint.endswith("/v1/events") else endpoint
        return [f"FAILED: nothing takes events at {endpoint} (HTTP {status})."] + server + [
            "  Fix: STEMTRACE_URL is the server's base address, e.g. http://127.0.0.1:8787 — without /v1/events,",
            f"  /api or a page path (now {base!r}); is this address a stemtrace server at all?",
        ]
    if status == 413:
        return [f"FAILED: {endpoint} said the test batch is too large (HTTP 413)."] + server + [
            "  A proxy in front of stemtrace limits request bodies; raise its limit (batches are up to 1 MiB)."]
    if status == 415:
        return [f"FAILED: {endpoint} refused the body's type (HTTP 415)."] + server + [
            "  The check sends Content-Type: application/json with gzip, as the producer does; something between",
            "  here and the Worker rewrote the headers, or STEMTRACE_URL points at another service.",
        ]
    if status == 400:
        return [f"FAILED: {endpoint} did not understand the batch (HTTP 400)."] + server + [
            "  A proxy may have altered the gzipped body, or this is not a stemtrace server (or a much older one)."]
    if status in (408, 429) or status >= 500:
        return [f"FAILED: {endpoint} answered HTTP {status}: the server is up but could not take events now."] + server + [
            "  Fix: look at the server's log (wrangler dev's output, or `wrangler tail` when deployed); the producer",
            "  retries such answers and buffers meanwhile, so tasks are not affected.",
        ]
    return [f"FAILED: {endpoint} answered HTTP {status}, which a stemtrace server does not send here."] + server + [
        "  Fix: check that STEMTRACE_URL is the stemtrace Worker's address."]


def _explain_unreachable(err: BaseException, endpoint: str, host: str, port: Optional[int], timeout: float) -> List[str]:
    reason = getattr(err, "reason", err)
    if isinstance(reason, socket.gaierror):
        return [f"FAILED: cannot resolve the host {host!r} of {endpoint} ({reason.strerror or reason}).",
                "  Fix: check the host name in STEMTRACE_URL (and DNS on this machine); locally it is http://127.0.0.1:8787."]
    if isinstance(reason, ConnectionRefusedError):
        return [f"FAILED: nothing is listening at {host}:{port} (connection refused).",
                "  Fix: start stemtrace (`npm start` serves http://127.0.0.1:8787; `PORT=18921 npm start` another port)",
                "  and point STEMTRACE_URL at it, e.g. STEMTRACE_URL=http://127.0.0.1:18921."]
    if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
        return [f"FAILED: no answer from {endpoint} within {timeout:g} s.",
                "  Fix: check that the address is reachable from here (firewall, proxy, VPN); raise --timeout if the link is slow."]
    if isinstance(reason, ssl.SSLError):
        return [f"FAILED: TLS with {host} failed ({reason}).",
                "  Fix: http:// for wrangler dev, https:// for a deployed Worker; a corporate proxy may need its CA (SSL_CERT_FILE)."]
    return [f"FAILED: could not reach {endpoint}: {reason}.",
            "  Fix: check STEMTRACE_URL and that stemtrace is running there."]


def run_check(config: Config, timeout: float = 10.0, now: Optional[float] = None) -> Outcome:
    """Sends the test event; never raises for network or server trouble (the Outcome says it)."""
    task_id = str(uuid.uuid4())
    base = config.url.rstrip("/")
    endpoint = config.endpoint
    ui_url = f"{base}/traces/{task_id}"
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Outcome(False, [f"FAILED: STEMTRACE_URL={config.url!r} is not an http(s) address.",
                               "  Fix: e.g. STEMTRACE_URL=http://127.0.0.1:8787 (wrangler dev) or https://stemtrace.example.com."],
                       task_id, ui_url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return Outcome(False, [f"FAILED: the port in STEMTRACE_URL={config.url!r} is not a number from 1 to 65535."], task_id, ui_url)

    body = gzip.compress(('{"events":[' + encode(test_event(task_id, now)) + "]}").encode(), 1)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "User-Agent": USER_AGENT}
    headers.update(config.auth_headers())
    request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(_NoRedirect)  # keeps urllib's proxy handling, as the sender's urllib path
    started = time.monotonic()
    try:
        with opener.open(request, timeout=timeout) as res:
            status, answer, location = res.status, res.read(), ""
    except urllib.error.HTTPError as err:
        status, answer, location = err.code, err.read(), err.headers.get("Location", "")
    except (urllib.error.URLError, OSError) as err:
        return Outcome(False, _explain_unreachable(err, endpoint, parts.hostname, port, timeout), task_id, ui_url)
    elapsed_ms = (time.monotonic() - started) * 1000

    if not 200 <= status < 300:
        return Outcome(False, _explain_status(status, answer, endpoint, bool(config.token), location), task_id, ui_url)
    try:
        result = json.loads(answer.decode("utf-8"))
        accepted, duplicates, rejected = result["accepted"], result.get("duplicates", 0), result.get("rejected", [])
    except Exception:
        return Outcome(False, [f"FAILED: {endpoint} answered HTTP {status} but not as stemtrace does "
                               f"(expected {{\"accepted\": n, ...}}, got {answer[:120]!r}).",
                               "  Fix: STEMTRACE_URL points at another service (or a proxy's page); use the stemtrace Worker's address."],
                       task_id, ui_url)
    if rejected or not accepted + duplicates:
        why = "; ".join(str(r.get("error", r)) for r in rejected) if rejected else "nothing was stored"
        return Outcome(False, [f"FAILED: the server refused the test event: {why}.",
                               "  Fix: if it mentions the clock, set this machine's time (NTP); otherwise the server is a",
                               "  different version than this producer: update one of them."],
                       task_id, ui_url)
    token_note = "with STEMTRACE_TOKEN" if config.token else "without a token"
    return Outcome(True, [
        f"OK: {endpoint} accepted a test event ({token_note}, HTTP {status}, {elapsed_ms:.0f} ms).",
        f"See it at {ui_url}",
        f"  (task {CHECK_TASK}, id {task_id}; its trace is in the list within a second or two)",
    ], task_id, ui_url)


def main(config: Config, timeout: float, out: TextIO) -> int:
    print(f"stemtrace check: sending a test event to {config.endpoint} "
          f"({'STEMTRACE_TOKEN set' if config.token else 'no STEMTRACE_TOKEN'})", file=out)
    outcome = run_check(config, timeout)
    for line in outcome.lines:
        print(line, file=out)
    return 0 if outcome.ok else 1
