"""The producer inside a real Celery app (Debian's celery): publish through the in-memory broker
and eager runs fire the real signals; the events reach a sink through the real mapping."""
import unittest
import warnings

from celery import Celery

import stemtrace
from stemtrace.trace import TRACE_HEADER

from .test_worker_side import Capture


def make_app(name):
    app = Celery(name, broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = False

    @app.task(name=f"{name}.add")
    def add(x, y):
        """Adds two numbers."""
        return x + y

    @app.task(name=f"{name}.boom")
    def boom(password):
        raise ValueError("boom")

    return app, add, boom


class SignalsTest(unittest.TestCase):
    def producer(self, name, **options):
        app, add, boom = make_app(name)
        producer = stemtrace.init(app, url="http://127.0.0.1:9", flush_interval=0.05, **options)
        capture = Capture()
        producer.sender._post = capture
        return app, add, boom, producer, capture

    def test_publish_writes_the_trace_header_and_sends_published(self):
        app, add, _, producer, capture = self.producer("sig1")
        with stemtrace.trace("request-42"):
            result = add.delay(2, 3)
        producer.flush(5)
        published = [e for e in capture.events if e["type"] == "published" and e["task_id"] == result.id]
        self.assertEqual(len(published), 1)
        self.assertEqual(published[0]["trace_id"], "request-42")
        self.assertEqual(published[0]["name"], "sig1.add")
        self.assertEqual(published[0]["args"], [2, 3])

    def test_eager_run_sends_started_succeeded_postrun(self):
        app, add, boom, producer, capture = self.producer("sig2")
        add.apply(args=(1, 2))
        boom.apply(kwargs={"password": "hunter2"})
        producer.flush(5)
        types = [e["type"] for e in capture.events]
        self.assertEqual(types.count("started"), 2)
        self.assertIn("succeeded", types)
        failed = next(e for e in capture.events if e["type"] == "failed")
        self.assertEqual(failed["exception"]["type"], "ValueError")
        started_boom = next(e for e in capture.events if e["type"] == "started" and e["name"] == "sig2.boom")
        self.assertEqual(started_boom["kwargs"], {"password": "[Filtered]"})
        postrun = [e for e in capture.events if e["type"] == "postrun"]
        self.assertTrue(all(e["runtime_ms"] >= 0 for e in postrun))

    def test_capture_options_are_honoured(self):
        app, add, _, producer, capture = self.producer("sig3", capture_args=False, capture_result=False)
        add.apply(args=(1, 2))
        producer.flush(5)
        self.assertFalse(any("args" in e for e in capture.events))
        self.assertFalse(any("result" in e for e in capture.events))

    def test_init_worker_accepts_the_open_source_options(self):
        app, *_ = make_app("sig4")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            producer = stemtrace.init_worker(
                app, transport_url="redis://x", prefix="p", ttl=10, capture_args=True, capture_result=False,
                scrub_sensitive_data=True, additional_sensitive_keys={"tenant"}, safe_keys={"token_count"},
                max_data_size=100, node_alias_from_arguments="0", url="http://127.0.0.1:9",
            )
        self.assertIsNotNone(producer)
        self.assertEqual(len([w for w in caught if "ignored" in str(w.message)]), 1)
        self.assertFalse(producer.config.capture_result)
        self.assertIn("tenant", producer.config.additional_sensitive_keys)

    def test_a_broken_sender_never_breaks_a_task(self):
        app, add, _, producer, _ = self.producer("sig5")

        def explode(_rec):
            raise RuntimeError("queue on fire")

        producer.sender.enqueue = explode
        self.assertEqual(add.apply(args=(2, 2)).get(), 4)

    def test_trace_header_name(self):
        self.assertEqual(TRACE_HEADER, "stemtrace_trace_id")


if __name__ == "__main__":
    unittest.main()
