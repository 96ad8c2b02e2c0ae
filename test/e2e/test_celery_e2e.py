"""End to end with real parts: redis-server, stemtrace under `wrangler dev`, a real Celery worker
(prefork) with the producer, and real workflows asserted through the read API.

Run: python3 -m unittest discover -s test/e2e -t test/e2e   (npm test runs it)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Short timeouts so the anomaly tests see detection happen (the defaults are minutes).
STUCK_PENDING_S = 5
HEARTBEAT_S = 1
LOST_MULTIPLIER = 3
HERE = Path(__file__).resolve().parent
NODE = str(ROOT / "node_modules" / ".bin" / "node")
PYTHON = "/usr/bin/python3"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=30.0, interval=0.2):
    """Polls `check` until it returns something truthy; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as err:  # the server may not be up yet
            last = err
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def stop(proc, sig=signal.SIGTERM, timeout=15):
    """Stops a process group started with start_new_session=True, by its PID."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        except ProcessLookupError:
            pass


class Stack:
    """redis + wrangler dev + a Celery worker, each on its own loopback port, all stopped at the end."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="stemtrace-e2e-")
        self.procs = []
        self.redis_port = free_port()
        self.http_port = free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.worker = None
        self.logs = []

    def log(self, name):
        handle = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        self.logs.append(handle)
        return handle

    def start(self):
        self.procs.append(subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=self.log("redis"), stderr=subprocess.STDOUT, start_new_session=True))
        (ROOT / "web" / "dist").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, WRANGLER_SEND_METRICS="false", CI="1")
        self.procs.append(subprocess.Popen(
            [NODE, str(ROOT / "node_modules/wrangler/bin/wrangler.js"), "dev", "--ip", "127.0.0.1", "--port", str(self.http_port),
             "--inspector-port", str(free_port()), "--persist-to", os.path.join(self.tmp, "state"),
             "--var", "WORKER_LOST_MULTIPLIER:3", "--var", f"STUCK_PENDING_S:{STUCK_PENDING_S}"],
            cwd=ROOT, env=env, stdout=self.log("wrangler"), stderr=subprocess.STDOUT, start_new_session=True))
        wait_for("redis", lambda: socket.create_connection(("127.0.0.1", self.redis_port), 1).close() or True)
        wait_for("stemtrace /api/health", lambda: self.get("/api/health")["ok"], timeout=90)
        os.environ["E2E_BROKER"] = f"redis://127.0.0.1:{self.redis_port}/0"
        os.environ["STEMTRACE_URL"] = self.base
        self.start_worker()

    def start_worker(self):
        self.worker = self.start_celery("e2e@localhost", ["-P", "prefork", "-c", "2"])

    def start_celery(self, hostname, options):
        """A Celery worker of e2e_app with the producer, once stemtrace has it online."""
        env = dict(os.environ, PYTHONPATH=f"{ROOT / 'python'}:{HERE}", E2E_HEARTBEAT=str(HEARTBEAT_S))
        worker = subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "e2e_app", "worker", *options, "-n", hostname,
             "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            cwd=HERE, env=env, stdout=self.log(hostname.split("@")[0]), stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(worker)
        # This process's own session (a restarted worker keeps its row, with a new pid).
        wait_for(f"{hostname} to come online", lambda: self.worker_info(hostname) == ("ONLINE", worker.pid), timeout=60)
        return worker

    def worker_info(self, hostname="e2e@localhost"):
        for w in self.get("/api/workers")["workers"]:
            if w["hostname"] == hostname:
                return w["status"], w["pid"]
        return None

    def worker_status(self):
        info = self.worker_info()
        return info and info[0]

    def get(self, path):
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as res:
                return json.loads(res.read())
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def stop(self):
        for proc in reversed(self.procs):
            stop(proc)
        for handle in self.logs:
            handle.close()
        if os.environ.get("E2E_KEEP_LOGS"):
            print(f"e2e logs kept in {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


STACK = None


def task_detail(task_id, until, timeout=30):
    """The task detail once `until` holds for it."""
    return wait_for(f"task {task_id}", lambda: (lambda d: d if d and until(d) else None)(STACK.get(f"/api/tasks/{task_id}")), timeout)


def setUpModule():
    global STACK
    STACK = Stack()
    try:
        STACK.start()
    except Exception:
        for name in ("wrangler", "e2e"):
            path = os.path.join(STACK.tmp, f"{name}.log")
            if os.path.exists(path):
                print(f"--- {name} log ---\n" + open(path, errors="replace").read()[-3000:], file=sys.stderr)
        STACK.stop()
        raise
    sys.path[:0] = [str(ROOT / "python"), str(HERE)]


def tearDownModule():
    # Results that were waited on unsubscribe from Redis when collected: collect them while it is up.
    import gc

    gc.collect()
    if STACK:
        STACK.stop()


class CeleryEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import e2e_app

        cls.app = e2e_app

    def task(self, task_id, until=lambda t: t["task"]["state"] in ("SUCCESS", "FAILURE"), timeout=30):
        return task_detail(task_id, until, timeout)

    def trace(self, task_id, until, timeout=30):
        """The snapshot of the trace holding `task_id`, once `until` holds for it."""
        def check():
            detail = STACK.get(f"/api/tasks/{task_id}")
            if not detail:
                return None
            snap = STACK.get(f"/api/traces/{detail['trace_id']}")
            return snap if snap and until(snap) else None

        return wait_for(f"trace of {task_id}", check, timeout)

    def anomalies(self, **query):
        qs = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in query.items())
        return STACK.get(f"/api/anomalies?{qs}")["anomalies"]

    def running_sleeper(self, seconds=30):
        """A task running on the worker, known to the index (it reports about once a second)."""
        r = self.app.sleeper.delay(seconds)
        self.task(r.id, until=lambda d: d["task"]["state"] == "STARTED")
        time.sleep(1.5)
        return r

    def restart_worker(self):
        stop(STACK.worker, signal.SIGKILL)
        STACK.start_worker()

    @staticmethod
    def states(snap):
        return {n["id"]: n["state"] for n in snap["nodes"]}

    @staticmethod
    def edges(snap):
        return {(e["source"], e["target"]): e["kind"] for e in snap["edges"]}

    def test_01_success(self):
        r = self.app.add.delay(2, 3)
        detail = self.task(r.id)
        self.assertEqual(detail["task"]["state"], "SUCCESS")
        self.assertEqual(detail["result"], 5)
        self.assertEqual(detail["task"]["worker"], "e2e@localhost")
        self.assertEqual([e["type"] for e in detail["events"]][:1], ["published"])

    def test_02_failure(self):
        r = self.app.boom.delay(7)
        detail = self.task(r.id)
        self.assertEqual(detail["task"]["state"], "FAILURE")
        self.assertEqual(detail["exception"]["type"], "ValueError")
        self.assertIn("boom! x=7", detail["exception"]["message"])
        self.assertIn("Traceback", detail["traceback"])

    def test_03_retry_then_success(self):
        r = self.app.flaky.delay(2)
        detail = self.task(r.id, until=lambda d: d["task"]["state"] == "SUCCESS")
        self.assertEqual([(a["retries"], a["state"]) for a in detail["attempts"]], [(0, "RETRY"), (1, "RETRY"), (2, "SUCCESS")])

    def test_04_chain(self):
        from celery import chain

        r = chain(self.app.add.s(1, 2), self.app.add.s(3), self.app.mul.s(2)).apply_async()
        first = r.parent.parent.id
        ids = [first, r.parent.id, r.id]
        snap = self.trace(first, lambda s: all(self.states(s).get(i) == "SUCCESS" for i in ids))
        self.assertEqual(self.edges(snap), {(ids[0], ids[1]): "chain", (ids[1], ids[2]): "chain"})
        self.assertEqual(r.get(timeout=10), 12)

    def test_05b_chord_in_middle_of_chain(self):
        """chain(a, group(b, c), tsum, d): a CHORD whose callback leads on to d (issue 12, case 1)."""
        from celery import chain, group

        add, tsum = self.app.add, self.app.tsum
        r = chain(add.si(1, 1), group(add.si(2, 2), add.si(3, 3)), tsum.s(), add.s(100)).apply_async()
        self.assertEqual(r.get(timeout=20), 110)
        callback = r.parent.id
        snap = self.trace(r.id, lambda s: self.states(s).get(r.id) == "SUCCESS" and self.states(s).get(callback) == "SUCCESS")
        (chord,) = [c for c in snap["containers"] if c["kind"] == "CHORD"]
        self.assertEqual(chord["callback_id"], callback)
        self.assertEqual(len(chord["members"]), 2)
        edges = self.edges(snap)
        self.assertEqual(edges.get((chord["id"], callback)), "chord")
        self.assertEqual(edges.get((callback, r.id)), "chain")
        self.assertNotIn("spawn", edges.values())
        detail = self.task(callback)
        self.assertEqual((detail["parent"]["kind"], detail["parent"]["task_id"]), ("chord", chord["id"]))

    def test_05c_chord_in_chain_header_fails(self):
        """A header task fails: the callback and the step after it are NOT_RUN, one chord_never_fired,
        and Celery's own error in on_chord_part_return lands on the task in its trace (no phantom)."""
        from celery import chain, group

        add, boom, tsum = self.app.add, self.app.boom, self.app.tsum
        r = chain(add.si(1, 1), group(boom.si(), add.si(3, 3)), tsum.s(), add.s(100)).apply_async()
        callback, last = r.parent.id, r.id
        # The id the client holds opens the task, with why it did not run, in the workflow's trace.
        detail = task_detail(last, lambda d: d["task"]["state"] == "NOT_RUN", timeout=40)
        trace_id = detail["trace_id"]
        cb = task_detail(callback, lambda d: d["task"]["state"] == "NOT_RUN")
        self.assertEqual(cb["trace_id"], trace_id)
        self.assertIn("chord header task", cb["task"]["state_reason"])
        snap = STACK.get(f"/api/traces/{trace_id}")
        (failed,) = [n for n in snap["nodes"] if n["name"] == "e2e.boom"]
        self.assertEqual(failed["state"], "FAILURE")
        # One task, one trace: the failure Celery fires after postrun is not a trace of its own.
        wait_for("the index to settle", lambda: STACK.get(f"/api/tasks/{failed['id']}")["trace_id"] == trace_id)
        self.assertIsNone(STACK.get(f"/api/traces/{failed['id']}"))
        # Celery's own TypeError from on_chord_part_return (its backend stores it) is on the task, in this trace.
        boom_detail = STACK.get(f"/api/tasks/{failed['id']}")
        self.assertEqual(boom_detail["task"]["state"], "FAILURE")
        self.assertIn("failed", [e["type"] for e in boom_detail["events"]])
        if [e["type"] for e in boom_detail["events"]].count("failed") > 1:  # the task's error, then Celery's
            self.assertIn("Celery itself raised TypeError", boom_detail["task"]["state_reason"])
        found = wait_for("search to find the callback", lambda: [(t["task_id"], t["state"]) for t in STACK.get(f"/api/tasks?q={callback[:13]}")["tasks"] if t["state"] == "NOT_RUN"] or None)
        self.assertEqual(found, [(callback, "NOT_RUN")])
        kinds = wait_for("chord_never_fired", lambda: [a["kind"] for a in STACK.get(f"/api/traces/{trace_id}/anomalies")["anomalies"] if a["resolved_at"] is None] or None)
        self.assertEqual(sorted(kinds), ["chord_never_fired"])
        self.assertEqual(snap["summary"].get("not_run_count"), 2)

    def test_05d_chained_chords(self):
        """A chord whose callback is followed by another chord: each callback on its own header."""
        from celery import chain, group

        add, mul, tsum = self.app.add, self.app.mul, self.app.tsum
        r = chain(group(add.si(1, 1), add.si(2, 2)), tsum.s(), group(mul.s(2), mul.s(3)), tsum.s()).apply_async()
        self.assertEqual(r.get(timeout=20), 30)
        first_callback = r.parent.parent.id if r.parent.parent is not None else None
        snap = self.trace(r.id, lambda s: self.states(s).get(r.id) == "SUCCESS")
        chords = [c for c in snap["containers"] if c["kind"] == "CHORD"]
        self.assertEqual(len(chords), 2)
        self.assertIn(r.id, [c["callback_id"] for c in chords])
        edges = self.edges(snap)
        for c in chords:
            self.assertEqual(edges.get((c["id"], c["callback_id"])), "chord")
        if first_callback:
            self.assertIn(first_callback, [c["callback_id"] for c in chords])

    def test_05e_chain_step_fails(self):
        """The steps after a failed one are NOT_RUN; one chain_stopped anomaly, at the first of them."""
        from celery import chain

        add, boom = self.app.add, self.app.boom
        r = chain(add.si(1, 1), boom.si(), add.si(2, 2), add.si(3, 3)).apply_async()
        detail = task_detail(r.id, lambda d: d["task"]["state"] == "NOT_RUN", timeout=40)
        self.assertTrue(detail["task"]["state_reason"].startswith("not run:"))
        second_last = r.parent.id
        first_stop = task_detail(second_last, lambda d: d["task"]["state"] == "NOT_RUN")
        self.assertTrue(first_stop["task"]["state_reason"].startswith("upstream step"))
        kinds = wait_for("chain_stopped", lambda: [(a["kind"], a["task_id"]) for a in STACK.get(f"/api/traces/{detail['trace_id']}/anomalies")["anomalies"]] or None)
        self.assertEqual(kinds, [("chain_stopped", second_last)])

    def test_05_group(self):
        from celery import group

        res = group(self.app.add.s(i, i) for i in range(3)).apply_async()
        ids = [c.id for c in res.children]
        snap = self.trace(ids[0], lambda s: all(self.states(s).get(i) == "SUCCESS" for i in ids))
        self.assertEqual(snap["trace_id"], res.id)
        (container,) = snap["containers"]
        self.assertEqual((container["id"], container["kind"], container["state"]), (res.id, "GROUP", "SUCCESS"))
        self.assertEqual(sorted(container["members"]), sorted(ids))

    def test_06_chord(self):
        from celery import chord

        r = chord([self.app.add.s(i, i) for i in range(3)], self.app.tsum.s()).apply_async()
        snap = self.trace(r.id, lambda s: self.states(s).get(r.id) == "SUCCESS")
        (container,) = snap["containers"]
        self.assertEqual(container["kind"], "CHORD")
        self.assertEqual(container["callback_id"], r.id)
        self.assertEqual(len(container["members"]), 3)
        self.assertEqual(container["state"], "SUCCESS")
        self.assertEqual(self.edges(snap).get((container["id"], r.id)), "chord")
        self.assertEqual(r.get(timeout=10), 6)

    def test_07_chord_header_fails(self):
        from celery import chord

        r = chord([self.app.add.s(1, 1), self.app.boom.s(), self.app.add.s(2, 2)], self.app.tsum.s()).apply_async()

        def failed(snap):
            return self.states(snap).get(r.id) == "NOT_RUN"

        # The callback never runs; reach the trace through a header member (the chord result's parent group).
        member = r.parent.children[1].id
        snap = self.trace(member, failed)
        (container,) = [c for c in snap["containers"] if c["callback_id"] == r.id]
        self.assertEqual(container["state"], "FAILURE")
        self.assertEqual(sorted(self.states(snap)[m] for m in container["members"]), ["FAILURE", "SUCCESS", "SUCCESS"])

    def test_08_parent_spawns_children(self):
        r = self.app.spawner.delay(3)
        children = r.get(timeout=15)
        snap = self.trace(r.id, lambda s: all(self.states(s).get(c) == "SUCCESS" for c in children))
        for c in children:
            self.assertEqual(self.edges(snap).get((r.id, c)), "spawn")

    def test_09_chain_containing_a_group(self):
        from celery import chain, group

        r = chain(self.app.add.s(1, 1), group(self.app.mul.s(2), self.app.mul.s(3)), self.app.tsum.s()).apply_async()
        self.assertEqual(r.get(timeout=15), 10)
        first = r.parent.parent.id  # tsum ← GroupResult ← add
        snap = self.trace(r.id, lambda s: self.states(s).get(r.id) == "SUCCESS")
        self.assertEqual(snap["trace_id"], first)
        chords = [c for c in snap["containers"] if c["kind"] == "CHORD"]
        self.assertEqual(len(chords), 1)
        self.assertEqual(chords[0]["callback_id"], r.id)
        self.assertEqual(len(chords[0]["members"]), 2)
        for member in chords[0]["members"]:
            self.assertEqual(self.edges(snap).get((first, member)), "chain")

    def test_10_unregistered_name(self):
        r = self.app.app.send_task("does.not.exist", args=(1, 2))
        detail = self.task(r.id, until=lambda d: d["task"]["state"] == "UNREGISTERED")
        self.assertEqual(detail["task"]["name"], "does.not.exist")
        (anomaly,) = wait_for("the unregistered anomaly", lambda: self.anomalies(trace_id=detail["trace_id"], status="open"))
        self.assertEqual((anomaly["kind"], anomaly["task_id"]), ("unregistered", r.id))
        self.assertIn("does.not.exist", anomaly["explanation"])
        self.assertEqual(detail["task"]["anomaly"], "unregistered")

    def test_12_stuck_pending_detected_within_its_timeout(self):
        """A task published to a queue no worker consumes is flagged after STUCK_PENDING_S (+ alarm precision)."""
        r = self.app.add.apply_async((1, 1), queue="nobody-consumes-this")
        published = time.time()
        (anomaly,) = wait_for("the stuck-pending anomaly", lambda: self.anomalies(kind="stuck_pending", status="open") and
                              [a for a in self.anomalies(kind="stuck_pending", status="open") if a["task_id"] == r.id],
                              timeout=STUCK_PENDING_S + 20, interval=0.1)
        latency = time.time() - published
        self.assertIn("nobody-consumes-this", anomaly["explanation"])
        self.assertIn("no online worker consumes", anomaly["explanation"])
        out = ROOT / "test-output"
        out.mkdir(exist_ok=True)
        (out / "anomaly-latency.json").write_text(json.dumps(
            {"kind": "stuck_pending", "timeout_s": STUCK_PENDING_S, "seen_after_s": round(latency, 2),
             "detected_after_s": round(anomaly["detected_at"] - anomaly["since"], 2)}) + "\n")
        print(f"\nstuck_pending with a {STUCK_PENDING_S} s timeout: seen through the API {latency:.2f} s after the publish "
              f"(detected {anomaly['detected_at'] - anomaly['since']:.2f} s after it)", file=sys.stderr)

    def test_97_cold_shutdown_interrupts_the_running_task(self):
        r = self.running_sleeper()
        os.kill(STACK.worker.pid, signal.SIGQUIT)  # a cold shutdown: running tasks are abandoned
        detail = self.task(r.id, until=lambda d: d["task"]["state"] == "INTERRUPTED", timeout=20)
        self.assertEqual(detail["task"]["anomaly"], "interrupted")
        kinds = [a["kind"] for a in self.anomalies(trace_id=detail["trace_id"], status="open")]
        self.assertEqual(kinds, ["interrupted"])
        self.restart_worker()

    def test_98_killed_worker_loses_its_running_task(self):
        r = self.running_sleeper()
        killed = time.time()
        os.kill(STACK.worker.pid, signal.SIGKILL)  # the main process dies silently (OOM killer, kill -9)
        detail = self.task(r.id, until=lambda d: d["task"]["state"] == "LOST", timeout=HEARTBEAT_S * LOST_MULTIPLIER + 15)
        print(f"\nSIGKILL of the worker: its task LOST {time.time() - killed:.2f} s later "
              f"(heartbeat {HEARTBEAT_S} s × {LOST_MULTIPLIER})", file=sys.stderr)
        self.assertIn("went silent", detail["task"]["state_reason"])
        self.assertEqual(wait_for("the worker to be lost", lambda: STACK.worker_status() == "LOST"), True)
        (anomaly,) = self.anomalies(trace_id=detail["trace_id"], status="open")
        self.assertEqual(anomaly["kind"], "lost")
        self.restart_worker()

    def test_11_revoked(self):
        r = self.app.sleeper.apply_async((1,), countdown=2)
        self.task(r.id, until=lambda d: d["task"]["state"] in ("SCHEDULED", "RECEIVED"))
        self.app.app.control.revoke(r.id)
        detail = self.task(r.id, until=lambda d: d["task"]["state"] == "REVOKED", timeout=20)
        self.assertEqual(detail["task"]["state"], "REVOKED")

    def test_99_warm_shutdown_lets_the_running_task_finish(self):
        r = self.app.sleeper.delay(3)
        self.task(r.id, until=lambda d: d["task"]["state"] == "STARTED")
        os.kill(STACK.worker.pid, signal.SIGTERM)  # what `kill <pid>` or a deploy does: a warm shutdown
        detail = self.task(r.id, until=lambda d: d["task"]["state"] == "SUCCESS", timeout=30)
        self.assertEqual(detail["result"], "slept 3")
        self.assertEqual(self.anomalies(trace_id=detail["trace_id"], status="all"), [])
        wait_for("the worker to go offline", lambda: STACK.worker_status() == "OFFLINE", timeout=30)
        STACK.worker.wait(30)


if __name__ == "__main__":
    unittest.main()


class SoloWorkerEndToEnd(unittest.TestCase):
    """A `-P solo` worker on its own queue: tasks start in the process that receives them, so the
    producer sends a success as one event that stands for received, started and succeeded, and
    stemtrace's ingest expands it back. The read API must not be able to tell."""

    @classmethod
    def setUpClass(cls):
        import e2e_app

        cls.app = e2e_app
        cls.worker = STACK.start_celery("solo@localhost", ["-P", "solo", "-Q", "solo"])

    def test_a_chain_has_every_event_and_time(self):
        from celery import chain

        r = chain(self.app.add.s(1, 2).set(queue="solo"), self.app.add.s(3).set(queue="solo"),
                  self.app.mul.s(2).set(queue="solo")).apply_async()
        self.assertEqual(r.get(timeout=20), 12)
        for task_id in (r.parent.parent.id, r.parent.id, r.id):
            # The client's producer sends its publishes on its own schedule: the worker's success may land first.
            detail = task_detail(task_id, lambda d: d["task"]["state"] == "SUCCESS" and any(e["type"] == "published" for e in d["events"]))
            self.assertEqual(detail["task"]["worker"], "solo@localhost")
            self.assertEqual(sorted(e["type"] for e in detail["events"]), ["published", "received", "started", "succeeded"])
            (attempt,) = detail["attempts"]
            self.assertLessEqual(attempt["published_at"], attempt["received_at"])
            self.assertLessEqual(attempt["received_at"], attempt["started_at"])
            self.assertLessEqual(attempt["started_at"], attempt["finished_at"])
        snap = STACK.get(f"/api/traces/{STACK.get(f'/api/tasks/{r.id}')['trace_id']}")
        ids = [r.parent.parent.id, r.parent.id, r.id]
        self.assertEqual({(e["source"], e["target"]): e["kind"] for e in snap["edges"]},
                         {(ids[0], ids[1]): "chain", (ids[1], ids[2]): "chain"})

    def test_a_long_task_is_seen_running_before_it_ends(self):
        self.app.add.apply_async((0, 0), queue="solo").get(timeout=20)  # not the worker's first task
        r = self.app.sleeper.apply_async((4,), queue="solo")
        running = task_detail(r.id, lambda d: d["task"]["state"] in ("STARTED", "SUCCESS"))
        self.assertEqual(running["task"]["state"], "STARTED")  # its held events went out while it ran
        done = task_detail(r.id, lambda d: d["task"]["state"] == "SUCCESS")
        self.assertEqual(sorted(e["type"] for e in done["events"]), ["published", "received", "started", "succeeded"])
