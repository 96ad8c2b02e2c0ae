"""The hot path (``fastpath``: published, received, started, succeeded written as JSON in the handler)
sends exactly the events of the general path (``extract`` records mapped by ``Mapper``): every
scenario runs through Celery's real objects twice, with and without it, and the two event streams
must be equal but for ids, sequence numbers and clocks."""
import datetime
import json
import re
import unittest

from celery import Celery, chain, signals
from celery.app.trace import build_tracer
from celery.worker.request import Request

import stemtrace
from stemtrace import extract
from stemtrace.fastpath import FastPath
from stemtrace.trace import TRACE_HEADER

from .test_worker_side import Capture, FakeMessage

#: What differs between two runs of the same scenario (and task ids, see ``same_ids``).
_VOLATILE = ("id", "seq", "ts", "runtime_ms")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def same_ids(events):
    """Task ids (uuids, new in every run) → their order of first appearance."""
    seen = {}
    text = _UUID.sub(lambda m: f"task-{seen.setdefault(m.group(0), len(seen))}", json.dumps(events))
    return json.loads(text)


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
        """The scenario's events with the hot path, without it, and which kinds of items were queued."""
        app, producer, capture = app_producer_capture or (self.app, self.producer, self.capture)
        handlers, sender = producer.handlers, producer.sender
        runs, kinds = [], []
        enqueue = sender.enqueue
        self.addCleanup(setattr, sender, "enqueue", enqueue)
        self.addCleanup(setattr, handlers, "fast", handlers.fast)

        def watch(item):
            name = item.get("task_name") if type(item) is dict else (item if type(item) is str else item[0])
            if app.main + "." in str(name):
                kinds.append(type(item).__name__)
            enqueue(item)

        for fast in (FastPath(sender.mapper), None):
            # Every init(app) of this test process listens to the same signals: only this app's tasks count.
            self.assertTrue(producer.flush(5))
            handlers.fast = fast
            kinds.clear()
            capture.events.clear()
            sender.enqueue = watch
            scenario(app)
            sender.enqueue = enqueue
            self.assertTrue(producer.flush(5))
            mine = [e for e in capture.events if e["kind"] == "task" and e["name"].startswith(app.main + ".")]
            events = same_ids([{k: v for k, v in e.items() if k not in _VOLATILE} for e in mine])
            runs.append((events, list(kinds)))
        (fast_events, fast_kinds), (general_events, general_kinds) = runs
        self.assertEqual(set(general_kinds), {"dict"})
        self.assertTrue(general_events)
        self.assertEqual(fast_events, general_events)
        return fast_events, fast_kinds

    def test_a_task_with_arguments_and_a_result_to_scrub(self):
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fp.add"].s(2, 3, secret="s3cr3t")))
        self.assertEqual([e["type"] for e in events], ["published", "received", "started", "succeeded"])
        self.assertEqual(kinds, ["tuple", "str", "str", "tuple"])  # args and the result wait for the sender thread
        self.assertEqual(events[0]["kwargs"], {"secret": "[Filtered]"})
        self.assertEqual(events[3]["result"]["secret"], "[Filtered]")
        self.assertEqual(events[0]["host"], "fp@test")

    def test_a_task_without_arguments_or_result_is_all_written_in_the_handlers(self):
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fp.none"].s()))
        self.assertEqual(kinds, ["str"] * 4)
        self.assertEqual((events[0]["args"], events[0]["kwargs"], events[3]["result"]), ([], {}, None))

    def test_an_uninstrumented_publisher_the_worker_sends_the_arguments(self):
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fp.add"].s(4, 5), instrumented=False))
        self.assertEqual(events[1]["args"], [4, 5])
        self.assertEqual(kinds[1], "tuple")

    def test_long_values_unicode_retries_eta_redelivery(self):
        eta = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        events, kinds = self.both(lambda app: self.run_task(
            app, app.tasks["fp.add"].s("ü" * 20_000, "\"quoted\"\n"), redelivered=True, retries=2, eta=eta,
            expires=eta + datetime.timedelta(days=1)))
        self.assertTrue(events[0]["args"][0].endswith("…[truncated 10000 chars]"))
        self.assertEqual((events[1]["retries"], events[1]["redelivered"]), (2, True))
        self.assertTrue(events[1]["eta"].startswith("2030-01-02T03:04:05"))
        self.assertEqual(kinds[2], "str")

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
        self.assertEqual(kinds, ["dict", "dict", "str", "tuple", "tuple"])  # the next step's publish is plain

    def test_failures_keep_their_runtime_through_the_general_path(self):
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fp.boom"].s(api_key="k")))
        self.assertEqual([e["type"] for e in events], ["published", "received", "started", "failed", "postrun"])
        self.assertEqual(kinds[2:], ["str", "dict", "dict"])

    def test_eager_runs_take_the_general_path(self):
        events, kinds = self.both(lambda app: app.tasks["fp.add"].apply((1, 2)))
        self.assertEqual([e["type"] for e in events], ["started", "succeeded"])
        self.assertEqual(kinds, ["dict", "dict"])
        self.assertTrue(events[0]["eager"])

    def test_capture_options_are_honoured(self):
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fplean.add"].s(2, 3)), self.lean)
        self.assertEqual(kinds, ["str"] * 4)
        self.assertNotIn("args", events[0])
        self.assertNotIn("result", events[3])


    def test_prerun_takes_the_attempt_received_wrote_and_leaves_nothing_behind(self):
        fast = self.producer.handlers.fast
        events, kinds = self.both(lambda app: self.run_task(app, app.tasks["fp.none"].s()))
        self.assertEqual([e["type"] for e in events], ["published", "received", "started", "succeeded"])
        self.assertEqual(fast.attempts, {})

    def test_a_name_that_differs_at_prerun_is_not_given_the_received_attempt(self):
        fast = self.producer.handlers.fast
        fast.attempts["t-1"] = ("shadow.name", ',"task_id":"t-1"')
        self.assertIsNone(fast.received_attempt("t-1", "fp.none"))
        self.assertEqual(fast.attempts, {})
        fast.attempts["t-2"] = ("fp.none", ',"task_id":"t-2"')
        self.assertEqual(fast.received_attempt("t-2", "fp.none"), ',"task_id":"t-2"')

    def test_a_revoked_task_drops_its_kept_attempt(self):
        fast = self.producer.handlers.fast
        fast.attempts["gone"] = ("fp.none", "x")

        class Req:
            id = "gone"

        signals.task_revoked.send(sender=self.app.tasks["fp.none"], request=Req(), terminated=False, signum=None, expired=False)
        self.assertNotIn("gone", fast.attempts)


if __name__ == "__main__":
    unittest.main()
