"""The hot path (``fastpath``: published, received, started, succeeded written as JSON in the handler)
sends exactly the events of the general path (``extract`` records mapped by ``Mapper``): every
scenario runs through Celery's real objects twice, with and without it, and the two event streams
must be equal but for ids, sequence numbers and clocks."""
import datetime
import json
import re
import time
import unittest

from celery import Celery, chain, signals
from celery.app.trace import build_tracer
from celery.worker.request import Request

import stemtrace
import stemtrace.config
import stemtrace.mapping
import stemtrace.scrub
from stemtrace import extract
from stemtrace.fastpath import FastPath
from stemtrace.trace import TRACE_HEADER

from .test_worker_side import Capture, FakeMessage

#: What differs between two runs of the same scenario (and task ids, see ``same_ids``).
_VOLATILE = ("id", "seq", "ts", "runtime_ms")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def same_ids(events):
    """Task ids (uuids, new in every run) → their order of first appearance in the published events
    (queued as they happen in both runs; held events move the others)."""
    seen = {}
    for e in events:
        if e["type"] == "published":
            for uuid in _UUID.findall(json.dumps(e)):
                seen.setdefault(uuid, len(seen))
    text = _UUID.sub(lambda m: f"task-{seen.setdefault(m.group(0), len(seen))}", json.dumps(events))
    return json.loads(text)


def unordered(events):
    return sorted(json.dumps(e, sort_keys=True) for e in events)


def make_app(name, **options):
    app = Celery(name, broker="memory://")
    app.conf.task_ignore_result = True

    @app.task(name=f"{name}.add")
    def add(x, y, secret=None):
        return {"sum": x + y, "secret": secret, "echo": [x] * 3}

    @app.task(name=f"{name}.none")
    def none(*args, **kwargs):
        return None

    @app.task(name=f"{name}.boom")
    def boom(api_key=None):
        raise KeyError("nope")

    app.finalize()
    producer = stemtrace.init(app, url="http://127.0.0.1:9", flush_interval=60, **options)
    capture = Capture()
    producer.sender._post = capture
    return app, producer, capture


class FastPathTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app, cls.producer, cls.capture = make_app("fp")
        cls.lean = make_app("fplean", capture_args=False, capture_result=False)

    def setUp(self):
        self.addCleanup(extract.NODE.__setitem__, "name", extract.NODE["name"])
        extract.NODE["name"] = "fp@test"
        # A -P solo worker after its first task: tasks start where they are received, so received is held.
        self.addCleanup(extract.TASKS_STARTED.__setitem__, "any", extract.TASKS_STARTED["any"])
        extract.TASKS_STARTED["any"] = True

    def run_task(self, app, sig, instrumented=True, redelivered=False, **message_options):
        """publish → received → prerun → (task) → postrun, the way a client and a -P solo worker run them."""
        sig.freeze()
        opts = sig.options
        headers, properties, body, _ = app.amqp.as_task_v2(
            opts["task_id"], sig.task, args=sig.args, kwargs=sig.kwargs, chain=opts.get("chain"),
            root_id=opts.get("root_id"), **message_options)
        signals.before_task_publish.send(sender=sig.task, body=body, headers=headers, routing_key="celery", exchange="",
                                         properties=properties, declare=[], retry_policy=None)
        if not instrumented:
            headers.pop(TRACE_HEADER)
        msg = FakeMessage(headers, properties, body)
        msg.delivery_info["redelivered"] = redelivered
        task = app.tasks[sig.task]
        req = Request(msg, app=app, task=task, hostname="fp@test")
        signals.task_received.send(sender=None, request=req)
        args, kwargs, embed = msg.payload
        req.request_dict.update({"args": args, "kwargs": kwargs, "hostname": "fp@test", "is_eager": False}, **embed or {})
        build_tracer(task.name, task, app=app, eager=False, propagate=False, hostname="fp@test")(
            req.id, args, kwargs, req.request_dict)

    def both(self, scenario, app_producer_capture=None):
        """The scenario's events without the hot path (in their order), the same events with it (in
        any order: held events go out later), which kinds of items the hot path queued, and how many
        of its events stood for more than themselves (the server expands them, as ``Capture`` does)."""
        app, producer, capture = app_producer_capture or (self.app, self.producer, self.capture)
        handlers, sender = producer.handlers, producer.sender
        runs, kinds = [], []
        enqueue = sender.enqueue
        self.addCleanup(setattr, sender, "enqueue", enqueue)
        self.addCleanup(setattr, handlers, "fast", handlers.fast)
        self.addCleanup(setattr, sender, "holds", sender.holds)

        def watch(item):
            name = item.get("task_name") if type(item) is dict else (item if type(item) is str else item[0])
            if app.main + "." in str(name):
                kinds.append(type(item).__name__)
            enqueue(item)

        for fast in (FastPath(sender.mapper), None):
            # Every init(app) of this test process listens to the same signals: only this app's tasks count.
            self.assertTrue(producer.flush(5))
            handlers.fast = sender.holds = fast
            kinds.clear()
            capture.events.clear()
            capture.coalesced = 0
            sender.enqueue = watch
            scenario(app)
            sender.enqueue = enqueue
            self.assertTrue(producer.flush(5))
            mine = [e for e in capture.events if e["kind"] == "task" and e["name"].startswith(app.main + ".")]
            events = same_ids([{k: v for k, v in e.items() if k not in _VOLATILE} for e in mine])
            runs.append((events, list(kinds), capture.coalesced))
            if fast is not None:
                self.assertEqual(fast.held, {})  # nothing left behind
        (fast_events, fast_kinds, coalesced), (general_events, general_kinds, _) = runs
        self.assertEqual(set(general_kinds), {"dict"})
        self.assertTrue(general_events)
        self.assertEqual(unordered(fast_events), unordered(general_events))
        self.coalesced = coalesced
        return general_events, fast_kinds

    def test_a_task_with_arguments_and_a_result_to_scrub(self):
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fp.add"].s(2, 3, secret="s3cr3t")))
        self.assertEqual([e["type"] for e in events], ["published", "received", "started", "succeeded"])
        self.assertEqual(kinds, ["tuple", "tuple"])  # args and the result wait for the sender thread
        self.assertEqual(self.coalesced, 1)  # succeeded stood for received and started too
        self.assertEqual(events[0]["kwargs"], {"secret": "[Filtered]"})
        self.assertEqual(events[3]["result"]["secret"], "[Filtered]")
        self.assertEqual(events[0]["host"], "fp@test")

    def test_a_task_without_arguments_or_result_is_all_written_in_the_handlers(self):
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fp.none"].s()))
        self.assertEqual(kinds, ["str"] * 2)
        self.assertEqual((events[0]["args"], events[0]["kwargs"], events[3]["result"]), ([], {}, None))

    def test_an_uninstrumented_publisher_the_worker_sends_the_arguments(self):
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fp.add"].s(4, 5), instrumented=False))
        self.assertEqual(events[1]["args"], [4, 5])
        self.assertEqual(kinds, ["tuple", "tuple", "tuple"])  # received is not held (it carries the arguments)
        self.assertEqual(self.coalesced, 1)  # started is, until succeeded

    def test_long_values_unicode_retries_eta_redelivery(self):
        eta = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        events, kinds = self.both(lambda app: self.run_task(
            app, app.tasks["fp.add"].s("ü" * 20_000, "\"quoted\"\n"), redelivered=True, retries=2, eta=eta,
            expires=eta + datetime.timedelta(days=1)))
        self.assertTrue(events[0]["args"][0].endswith("…[truncated 10000 chars]"))
        self.assertEqual((events[1]["retries"], events[1]["redelivered"]), (2, True))
        self.assertTrue(events[1]["eta"].startswith("2030-01-02T03:04:05"))
        self.assertEqual(kinds, ["tuple", "tuple"])
        self.assertEqual(self.coalesced, 1)

    def test_chains_are_announced_by_the_general_path(self):
        def scenario(app):
            add = app.tasks["fp.add"]
            c = chain(add.s(1, 2), add.si(3, 4))
            first, rest = c.tasks[0].clone(), c.tasks[1].clone()
            rest.freeze()
            first.options["chain"] = [dict(rest)]
            self.run_task(app, first)

        events, kinds = self.both(scenario)
        self.assertEqual([e["type"] for e in events], ["published", "received", "started", "published", "succeeded"])
        # (published: the general path maps it after this one-process tracer popped the shared chain list)
        self.assertEqual(len(events[1]["chain"]), 1)
        self.assertEqual(kinds, ["dict", "dict", "tuple", "tuple"])  # the next step's publish is plain

    def test_failures_keep_their_runtime_through_the_general_path(self):
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fp.boom"].s(api_key="k")))
        self.assertEqual([e["type"] for e in events], ["published", "received", "started", "failed", "postrun"])
        self.assertEqual(kinds[1:], ["str", "str", "dict", "dict"])  # the held ones go out with the failure
        self.assertEqual(self.coalesced, 0)

    def test_eager_runs_take_the_general_path(self):
        events, kinds = self.both(lambda app: app.tasks["fp.add"].apply((1, 2)))
        self.assertEqual([e["type"] for e in events], ["started", "succeeded"])
        self.assertEqual(kinds, ["dict", "dict"])
        self.assertTrue(events[0]["eager"])

    def test_capture_options_are_honoured(self):
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fplean.add"].s(2, 3)), self.lean)
        self.assertEqual(kinds, ["str"] * 2)
        self.assertNotIn("args", events[0])
        self.assertNotIn("result", events[3])


    def test_a_first_task_in_a_process_and_a_prefork_parent_hold_nothing_at_received(self):
        extract.TASKS_STARTED["any"] = False  # no task has started in this process (yet)
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fp.none"].s()))
        self.assertEqual([e["type"] for e in events], ["published", "received", "started", "succeeded"])
        self.assertEqual(kinds, ["str"] * 3)  # received queued; started held until succeeded
        self.assertEqual(self.coalesced, 1)


class FakeTask:
    """What prerun reads of a task: its name and (only when nothing is held) its request."""

    def __init__(self, name, request=None):
        self.name, self._request = name, request

    @property
    def request(self):
        if self._request is None:
            raise AssertionError("task.request was read although the attempt was held")
        return self._request


class HeldEventsTest(unittest.TestCase):
    def setUp(self):
        self.fast = FastPath(stemtrace.mapping.Mapper(stemtrace.scrub.Scrubber()))

    def test_prerun_takes_the_held_attempt_without_reading_the_request(self):
        self.fast.held["t-1"] = ("app.add", ',"task_id":"t-1"', "1.5", ',"root_id":"t-1"', None)
        attempt, ready = self.fast.start("t-1", FakeTask("app.add"))
        self.assertEqual((attempt, ready), (',"task_id":"t-1"', []))
        name, attempt, received_ts, links, started_ts = self.fast.held["t-1"]
        self.assertEqual((name, received_ts, links), ("app.add", "1.5", ',"root_id":"t-1"'))
        self.assertRegex(started_ts, r"^\d+\.\d{6}$")

    def test_a_name_that_differs_at_prerun_gets_its_own_attempt_and_the_other_is_sent(self):
        class Req:
            is_eager, id, retries, delivery_info = False, "t-2", 0, {"routing_key": "celery"}

        self.fast.held["t-2"] = ("shadow.name", ',"task_id":"t-2","name":"shadow.name"', "1.5", "", None)
        attempt, ready = self.fast.start("t-2", FakeTask("app.add", Req()))
        self.assertIn('"name":"app.add"', attempt)
        self.assertEqual(ready, ['"kind":"task","type":"received","ts":1.5,"task_id":"t-2","name":"shadow.name"}'])

    def test_held_events_wait_one_to_two_releases_and_a_flush_takes_them_all(self):
        self.fast.held["slow"] = ("app.add", ',"task_id":"slow"', "1.5", "", "2.5")
        self.assertEqual(self.fast.release(), [])  # held since before this release: not yet a whole interval
        self.fast.held["new"] = ("app.add", ',"task_id":"new"', "3.5", "", None)
        self.assertEqual(self.fast.release(), ['"kind":"task","type":"received","ts":1.5,"task_id":"slow"}',
                                               '"kind":"task","type":"started","ts":2.5,"task_id":"slow"}'])
        self.assertEqual(list(self.fast.held), ["new"])
        self.assertEqual(self.fast.release(everything=True), ['"kind":"task","type":"received","ts":3.5,"task_id":"new"}'])
        self.assertEqual(self.fast.held, {})

    def test_a_forked_child_does_not_send_its_parents_held_events(self):
        import os
        self.fast.held["parents"] = ("app.add", ',"task_id":"parents"', "1.5", "", None)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if self.fast.held == {} else 1)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertIn("parents", self.fast.held)  # still the parent's to send


class HeldEventsInAWorkerTest(unittest.TestCase):
    """Through the signals and the real sender thread: nothing held is lost or kept forever."""

    @classmethod
    def setUpClass(cls):
        cls.app, cls.producer, cls.capture = make_app("held")
        cls.producer.config = cls.producer.sender.config = stemtrace.config.load_config(url="http://127.0.0.1:9", flush_interval=0.05)

    def setUp(self):
        self.addCleanup(extract.TASKS_STARTED.__setitem__, "any", extract.TASKS_STARTED["any"])
        extract.TASKS_STARTED["any"] = True
        self.capture.events.clear()

    def receive(self, name):
        """A task published and received in this process (as -P solo does): its task and request."""
        task = self.app.tasks[name]
        sig = task.s()
        sig.freeze()
        headers, properties, body, _ = self.app.amqp.as_task_v2(sig.options["task_id"], sig.task, args=(), kwargs={})
        signals.before_task_publish.send(sender=sig.task, body=body, headers=headers, routing_key="celery", exchange="",
                                         properties=properties, declare=[], retry_policy=None)
        req = Request(FakeMessage(headers, properties, body), app=self.app, task=task, hostname="held@test")
        signals.task_received.send(sender=None, request=req)
        return task, req

    def receive_and_start(self, name):
        task, req = self.receive(name)
        task.push_request(req.request_dict)
        self.addCleanup(task.pop_request)
        signals.task_prerun.send(sender=task, task_id=req.id, task=task, args=(), kwargs={})
        return req.id

    def types_sent(self, task_id):
        return [e["type"] for e in self.capture.events if e.get("task_id") == task_id]

    def flush_rarely(self):
        """Only a flush (or a full batch) sends anything during the test."""
        self.producer.sender.config = stemtrace.config.load_config(url="http://127.0.0.1:9", flush_interval=60)
        self.addCleanup(setattr, self.producer.sender, "config", self.producer.config)

    def test_a_long_task_is_seen_started_within_two_flush_intervals(self):
        task_id = self.receive_and_start("held.none")
        self.assertIn(task_id, self.producer.handlers.fast.held)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(self.types_sent(task_id)) < 3:
            time.sleep(0.02)
        self.assertEqual(self.types_sent(task_id),
                         ["published", "received", "started"])
        self.assertNotIn(task_id, self.producer.handlers.fast.held)
        # It then ends: a plain succeeded (nothing is held any more).
        task = self.app.tasks["held.none"]
        signals.task_postrun.send(sender=task, task_id=task_id, task=task, args=(), kwargs={}, retval=None, state="SUCCESS")
        self.assertTrue(self.producer.flush(5))
        self.assertEqual(self.types_sent(task_id),
                         ["published", "received", "started", "succeeded"])

    def test_a_revoked_task_sends_its_held_received(self):
        self.flush_rarely()
        task, req = self.receive("held.none")
        self.assertIn(req.id, self.producer.handlers.fast.held)
        signals.task_revoked.send(sender=task, request=req, terminated=False, signum=None, expired=False)
        self.assertNotIn(req.id, self.producer.handlers.fast.held)
        self.assertTrue(self.producer.flush(5))
        self.assertEqual(self.types_sent(req.id),
                         ["published", "received", "revoked"])

    def test_a_flush_sends_what_is_held(self):
        self.flush_rarely()
        task_id = self.receive_and_start("held.none")
        self.assertTrue(self.producer.flush(5))
        self.assertEqual(self.types_sent(task_id),
                         ["published", "received", "started"])
        self.assertEqual(self.producer.handlers.fast.held, {})


if __name__ == "__main__":
    unittest.main()
