"""The shortcuts the hot path takes, each held to what it must not change: Celery's receiver cache on
the per-task signals, and the publish that skips Celery's task stack until a task has started in the
process. (The attempt that received writes and prerun reuses: test_fastpath.)"""
import unittest

from celery import signals
from celery.utils.dispatch import Signal

from stemtrace import extract
from stemtrace.signals import ReceiverCache, cache_receivers

from .test_fastpath import make_app


class ReceiverCacheTest(unittest.TestCase):
    def test_init_turns_the_cache_on_for_the_per_task_signals(self):
        make_app("rc")
        for signal in (signals.before_task_publish, signals.task_received, signals.task_prerun, signals.task_postrun):
            self.assertTrue(signal.use_caching, signal.name)
            self.assertIsInstance(signal.sender_receivers_cache, ReceiverCache)

    def test_a_cached_signal_still_honours_sender_filters_and_later_connections(self):
        signal = Signal(name="probe")
        cache_receivers(signal)
        seen = []
        signal.connect(lambda sender=None, **_: seen.append(("any", sender)), weak=False, dispatch_uid="any")
        signal.send(sender="a")
        signal.send(sender="a")  # from the cache
        # A receiver for one sender only, connected after the cache was filled: connect clears it.
        signal.connect(lambda sender=None, **_: seen.append(("only-b", sender)), sender="b", weak=False, dispatch_uid="b")
        signal.send(sender="a")
        signal.send(sender="b")
        self.assertEqual(seen, [("any", "a"), ("any", "a"), ("any", "a"), ("any", "b"), ("only-b", "b")])
        signal.disconnect(dispatch_uid="any")
        signal.send(sender="b")
        self.assertEqual(seen[-1], ("only-b", "b"))
        self.assertEqual(len(seen), 6)

    def test_the_cache_is_capped(self):
        cache = ReceiverCache()
        for i in range(ReceiverCache.LIMIT + 10):
            cache[f"sender-{i}"] = []
        self.assertLessEqual(len(cache), ReceiverCache.LIMIT)

    def test_a_signal_that_already_caches_is_left_alone(self):
        signal = Signal(name="own", use_caching=True)
        own = signal.sender_receivers_cache
        cache_receivers(signal)
        self.assertIs(signal.sender_receivers_cache, own)


class PublisherOutsideAndInsideATaskTest(unittest.TestCase):
    def setUp(self):
        self.addCleanup(extract.TASKS_STARTED.__setitem__, "any", extract.TASKS_STARTED["any"])
        extract.TASKS_STARTED["any"] = False

    def test_a_publish_inside_a_task_body_names_its_publisher_once_a_task_has_started(self):
        app, producer, capture = make_app("pub")
        child = app.tasks["pub.none"]

        @app.task(name="pub.parent")
        def parent():
            child.delay()

        # Eager: the parent runs here, through prerun (which sets TASKS_STARTED), and publishes its child.
        result = parent.apply()
        self.assertTrue(extract.TASKS_STARTED["any"])
        self.assertTrue(producer.flush(5))
        published = [e for e in capture.events if e["type"] == "published" and e["name"] == "pub.none"]
        self.assertEqual(len(published), 1)
        self.assertEqual(published[0]["publisher_task_id"], result.id)
        started = [e for e in capture.events if e["type"] == "started" and e["name"] == "pub.parent"]
        self.assertEqual(published[0]["trace_id"], started[0]["trace_id"])

    def test_a_plain_client_publish_has_no_publisher(self):
        app, producer, capture = make_app("client")
        app.tasks["client.none"].delay()
        self.assertFalse(extract.TASKS_STARTED["any"])
        self.assertTrue(producer.flush(5))
        published = [e for e in capture.events if e["type"] == "published" and e["name"] == "client.none"]
        self.assertEqual(len(published), 1)
        self.assertNotIn("publisher_task_id", published[0])


if __name__ == "__main__":
    unittest.main()
