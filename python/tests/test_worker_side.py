"""The worker-side signals with Celery's real objects: a worker ``Request`` built from a real
protocol-2 message (task_received) and the real tracer (prerun / postrun / failure), as a worker
runs them — without a broker."""
import gzip
import json
import unittest

from celery import Celery, chain, signals
from celery.app.trace import build_tracer
from celery.worker.request import Request

import stemtrace
from stemtrace.trace import TRACE_HEADER


class FakeMessage:
    """What kombu hands the worker: headers, properties, delivery_info and the decoded body."""

    def __init__(self, headers, properties, body):
        self.headers, self.properties, self.payload = headers, properties, body
        self.delivery_info = {"exchange": "", "routing_key": "celery", "priority": 0, "redelivered": None}
        self.body = json.dumps(body).encode()
        self.content_type, self.content_encoding = "application/json", "utf-8"
        self.delivery_tag, self.errors = 1, []

    def decode(self):
        return self.payload


#: As shared/wire.ts expandCoalesced: what the message said (received's), what the run produced (the end's).
MESSAGE_FIELDS = ("root_id", "parent_id", "group_id", "group_index", "eta", "expires", "args", "kwargs",
                  "chain", "callbacks", "errbacks", "chord_callback_id", "chord_callback_name", "chord_callback_chain")
OUTCOME_FIELDS = ("state", "runtime_ms", "result", "exception", "traceback")


def expand_coalesced(event):
    """What the server's ingest makes of an end event that stands for received and started too."""
    if event.get("kind") != "task" or ("received_ts" not in event and "started_ts" not in event):
        return [event]
    end = {k: v for k, v in event.items() if k not in ("received_ts", "started_ts")}
    out = []
    if "received_ts" in event:
        out.append({**{k: v for k, v in end.items() if k not in OUTCOME_FIELDS}, "id": f"{event['id']}:received",
                    "type": "received", "ts": event["received_ts"]})
    if "started_ts" in event:
        out.append({**{k: v for k, v in end.items() if k not in OUTCOME_FIELDS + MESSAGE_FIELDS},
                    "id": f"{event['id']}:started", "type": "started", "ts": event["started_ts"]})
    out.append({k: v for k, v in end.items() if k not in MESSAGE_FIELDS})
    return out


class Capture:
    """Stands in for the server: keeps the events of every batch, expanded as ingest expands them
    (``coalesced`` counts the events that stood for more than themselves)."""

    def __init__(self):
        self.events = []
        self.coalesced = 0

    def __call__(self, body):
        for event in json.loads(gzip.decompress(body))["events"]:
            expanded = expand_coalesced(event)
            self.coalesced += len(expanded) > 1
            self.events.extend(expanded)
        return 202


class WorkerSideTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.app = app = Celery("ws", broker="memory://")
        app.conf.task_ignore_result = True

        @app.task(name="ws.add")
        def add(x, y):
            return x + y

        @app.task(name="ws.boom")
        def boom(api_key):
            raise KeyError("nope")

        app.finalize()
        cls.add, cls.boom = add, boom
        cls.producer = stemtrace.init(app, url="http://127.0.0.1:9", flush_interval=0.05)
        cls.capture = Capture()
        cls.producer.sender._post = cls.capture

    def setUp(self):
        self.capture.events.clear()

    def message(self, sig, instrumented=True):
        """The message a client would publish for ``sig`` (with the trace header if instrumented)."""
        sig.freeze()
        opts = sig.options
        headers, properties, body, _ = self.app.amqp.as_task_v2(
            opts["task_id"], sig.task, args=sig.args, kwargs=sig.kwargs, chain=opts.get("chain"), root_id=opts.get("root_id"))
        if instrumented:
            headers[TRACE_HEADER] = "trace-from-publisher"
        return FakeMessage(headers, properties, body)

    def run_worker(self, task, msg):
        """task_received in the 'main process', then the tracer the way -P solo runs it."""
        req = Request(msg, app=self.app, task=task, hostname="ws@test")
        signals.task_received.send(sender=None, request=req)
        request_dict = req.request_dict
        args, kwargs, embed = msg.payload
        # fast_trace_task: the same dict object, updated with the embed (so chain lists are shared).
        request_dict.update({"args": args, "kwargs": kwargs, "hostname": "ws@test", "is_eager": False}, **embed or {})
        build_tracer(task.name, task, app=self.app, eager=False, propagate=False, hostname="ws@test")(req.id, args, kwargs, request_dict)
        self.producer.flush(5)
        return {e["type"]: e for e in self.capture.events if e.get("task_id") == req.id}

    def test_received_started_succeeded_carry_the_publishers_trace(self):
        msg = self.message(self.add.s(2, 3))
        evs = self.run_worker(self.add, msg)
        self.assertEqual(set(evs), {"received", "started", "succeeded"})
        for ev in evs.values():
            self.assertEqual(ev["trace_id"], "trace-from-publisher")
            self.assertEqual(ev["retries"], 0)
            self.assertEqual(ev["host"], None)  # no celeryd_init in this test process
        self.assertEqual(evs["received"]["queue"], "celery")
        self.assertEqual(evs["received"]["root_id"], msg.headers["id"])
        self.assertNotIn("args", evs["received"])  # the instrumented publish already sent them
        self.assertEqual(evs["succeeded"]["result"], 5)
        self.assertEqual(evs["succeeded"]["state"], "SUCCESS")
        self.assertGreaterEqual(evs["succeeded"]["runtime_ms"], 0)

    def test_uninstrumented_publisher_the_worker_sends_args_and_derives_the_trace(self):
        msg = self.message(self.add.s(4, 5), instrumented=False)
        evs = self.run_worker(self.add, msg)
        self.assertEqual(evs["received"]["args"], [4, 5])
        self.assertEqual(evs["received"]["trace_id"], msg.headers["root_id"])

    def test_received_keeps_the_whole_chain_though_the_tracer_pops_it(self):
        c = chain(self.add.s(1, 2), self.add.s(3), self.add.s(4))
        first = c.tasks[0].clone()
        rest = [t.clone() for t in c.tasks[1:]]
        for t in rest:
            t.freeze()
        first.options["chain"] = [dict(t) for t in reversed(rest)]
        evs = self.run_worker(self.add, self.message(first))
        self.assertEqual([s["task_id"] for s in evs["received"]["chain"]], [t.id for t in rest])

    def test_failure_scrubs_and_closes_with_postrun(self):
        evs = self.run_worker(self.boom, self.message(self.boom.s(api_key="sk-123")))
        self.assertEqual(evs["failed"]["exception"]["type"], "KeyError")
        self.assertIn("Traceback", evs["failed"]["traceback"])
        self.assertEqual(evs["postrun"]["state"], "FAILURE")
        self.assertEqual(evs["failed"]["trace_id"], "trace-from-publisher")

    def test_failure_after_postrun_without_the_request_stays_in_the_tasks_trace(self):
        """Celery 5.2.6 fires task_failure after postrun, with another request, when its own
        on_chord_part_return raises (recorded: 25b): the failure belongs to the task's trace."""
        task_id = "f41l-after-postrun"
        self.boom.push_request(id=task_id, retries=0, **{TRACE_HEADER: "trace-of-the-chain"})
        try:
            signals.task_prerun.send(sender=self.boom, task_id=task_id, task=self.boom, args=[], kwargs={})
            signals.task_postrun.send(sender=self.boom, task_id=task_id, task=self.boom, args=[], kwargs={}, retval=None, state=None)
        finally:
            self.boom.pop_request()
        signals.task_failure.send(sender=self.boom, task_id=task_id, exception=TypeError("sequence item 1: expected a bytes-like object, NoneType found"),
                                  args=[], kwargs={}, traceback=None, einfo=None)
        self.producer.flush(5)
        failed = [e for e in self.capture.events if e.get("task_id") == task_id and e["type"] == "failed"]
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0]["trace_id"], "trace-of-the-chain")
        self.assertEqual(failed[0]["exception"]["type"], "TypeError")


if __name__ == "__main__":
    unittest.main()
