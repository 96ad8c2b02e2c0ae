"""W3C ``traceparent`` at publish time (stemtrace.tracecontext): from the message headers, an enclosing
``stemtrace.traceparent()`` block or the current OpenTelemetry span, on the published event of a
task published outside any task, by both the hot path and the general path; valid on the wire."""
import unittest
from types import SimpleNamespace
from unittest import mock

from celery import chain

import stemtrace
from stemtrace import tracecontext as tpmod

from .test_signals import make_app
from .test_wire_schema import NODE, ROOT, validate
from .test_worker_side import Capture

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TP2 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


class ValidTest(unittest.TestCase):
    def test_accepts_w3c_and_refuses_the_rest(self):
        self.assertEqual(tpmod.valid(TP), TP)
        self.assertEqual(tpmod.valid("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later"),
                         "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later")
        for bad in (None, 42, "", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                    "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
                    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TP + "-extra", "x" * 600):
            self.assertIsNone(tpmod.valid(bad), bad)

    def test_the_block_sets_and_restores_and_ignores_invalid_values(self):
        self.assertIsNone(stemtrace.current_traceparent())
        with stemtrace.traceparent(TP) as value:
            self.assertEqual(value, TP)
            self.assertEqual(stemtrace.current_traceparent(), TP)
            with stemtrace.traceparent("garbage") as inner:
                self.assertIsNone(inner)
                self.assertEqual(stemtrace.current_traceparent(), TP)
            with stemtrace.traceparent(None):
                self.assertEqual(stemtrace.current_traceparent(), TP)
        self.assertIsNone(stemtrace.current_traceparent())

    def test_precedence_header_then_block_then_opentelemetry(self):
        span = SimpleNamespace(get_span_context=lambda: SimpleNamespace(
            is_valid=True, trace_id=0x0af7651916cd43dd8448eb211c80319c, span_id=0xb7ad6b7169203331, trace_flags=0))
        fake_otel = SimpleNamespace(get_current_span=lambda: span)
        with mock.patch.object(tpmod, "_otel_trace", fake_otel):
            self.assertEqual(tpmod.incoming({}), TP2)
            with stemtrace.traceparent(TP):
                self.assertEqual(tpmod.incoming({}), TP)
                self.assertEqual(tpmod.incoming({"traceparent": TP2}), TP2)
        with mock.patch.object(tpmod, "_otel_trace", None):
            self.assertIsNone(tpmod.incoming({}))
            self.assertIsNone(tpmod.incoming({"traceparent": "not-one"}))

    def test_an_invalid_opentelemetry_span_gives_nothing(self):
        span = SimpleNamespace(get_span_context=lambda: SimpleNamespace(is_valid=False))
        with mock.patch.object(tpmod, "_otel_trace", SimpleNamespace(get_current_span=lambda: span)):
            self.assertIsNone(tpmod.from_opentelemetry())
        broken = SimpleNamespace(get_current_span=mock.Mock(side_effect=RuntimeError("no")))
        with mock.patch.object(tpmod, "_otel_trace", broken):
            self.assertIsNone(tpmod.from_opentelemetry())


class PublishTest(unittest.TestCase):
    def producer(self, name, **options):
        app, add, boom = make_app(name)

        @app.task(name=f"{name}.spawn")
        def spawn():
            return add.delay(1, 1).id

        producer = stemtrace.init(app, url="http://127.0.0.1:9", flush_interval=0.05, **options)
        capture = Capture()
        producer.sender._post = capture
        return app, add, spawn, producer, capture

    def published(self, capture, task_id):
        return [e for e in capture.events if e["type"] == "published" and e["task_id"] == task_id]

    def test_from_the_message_headers(self):
        _, add, _, producer, capture = self.producer("tp1")
        result = add.apply_async((1, 2), headers={"traceparent": TP})
        producer.flush(5)
        [event] = self.published(capture, result.id)
        self.assertEqual(event["traceparent"], TP)

    def test_from_the_block_on_both_paths_and_not_outside_it(self):
        for fast in (True, False):
            with self.subTest(fast=fast):
                _, add, _, producer, capture = self.producer(f"tp2{fast}")
                if not fast:
                    producer.handlers.fast = None  # the general path (extract + mapping)
                with stemtrace.traceparent(TP):
                    inside = add.delay(1, 2)
                outside = add.delay(3, 4)
                producer.flush(5)
                [event] = self.published(capture, inside.id)
                self.assertEqual(event["traceparent"], TP)
                [plain] = self.published(capture, outside.id)
                self.assertNotIn("traceparent", plain)

    def test_a_chain_from_a_request_carries_it_on_its_first_publish(self):
        _, add, _, producer, capture = self.producer("tp3")
        with stemtrace.traceparent(TP):
            result = chain(add.s(1, 2), add.s(3)).apply_async()
        producer.flush(5)
        first = [e for e in capture.events if e["type"] == "published" and e["task_id"] != result.id]
        self.assertEqual([e.get("traceparent") for e in first], [TP])

    def test_a_publish_inside_a_task_reads_none(self):
        _, add, spawn, producer, capture = self.producer("tp4")
        with stemtrace.traceparent(TP):
            child_id = spawn.apply().get()
        producer.flush(5)
        [child] = self.published(capture, child_id)
        self.assertNotIn("traceparent", child)
        self.assertTrue(child.get("publisher_task_id"))

    @unittest.skipUnless(NODE.exists() and (ROOT / "node_modules" / "zod").exists(), "needs npm install (Node 22 + zod)")
    def test_events_with_it_validate_against_the_wire_schema(self):
        _, add, _, producer, capture = self.producer("tp5")
        with stemtrace.traceparent(TP):
            add.delay(1, 2)
        add.apply_async((1, 2), headers={"traceparent": TP2})
        producer.flush(5)
        self.assertEqual(sum(1 for e in capture.events if e.get("traceparent")), 2)
        self.assertEqual(validate({"live": capture.events}), {"live": []})


if __name__ == "__main__":
    unittest.main()
