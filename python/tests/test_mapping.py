"""The mapping over the real recordings (test/fixtures/celery-5.2.6), checked against their ids."""
import json
import unittest
from pathlib import Path

from stemtrace.mapping import chain_steps, chord_body, trace_key
from stemtrace.recordings import convert

FIXTURES = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "celery-5.2.6"


def events(name):
    return convert(FIXTURES / f"{name}.jsonl")


def meta(name):
    return json.loads((FIXTURES / f"{name}.meta.json").read_text())


class ChordFidelityTest(unittest.TestCase):
    """Chords followed by more steps, chained chords, chords in chord headers (recorded 25a-25e)."""

    def published(self, name):
        return {e["task_id"]: e for e in events(name) if e["type"] == "published"}

    def test_chord_in_the_middle_of_a_chain_announces_its_callback_and_what_follows(self):
        pubs = self.published("25a_chord_in_chain")
        first = pubs["6cf33936-74c6-4e9b-a681-cf80c6a5b1b8"]
        chord_step, after = first["chain"]
        self.assertEqual(chord_step["chord_callback"], {"task_id": "bec189b2-c8a0-401f-a9c3-5f489c0b788b", "name": "app.tsum"})
        self.assertEqual(after, {"task_id": "ba411506-0b0d-41ec-b1c0-cefcca41145f", "name": "app.add"})
        for member in ("f7536058-57ce-44f4-9d2c-a3d63398f3af", "ebb76993-8a3c-46aa-b91c-cae163d3444a"):
            self.assertEqual(pubs[member]["chord_callback_id"], "bec189b2-c8a0-401f-a9c3-5f489c0b788b")
            self.assertEqual(pubs[member]["chord_callback_chain"], [after])

    def test_chained_chords_header_names_the_second_chord(self):
        pubs = self.published("25d_chained_chords_header_fails")
        boom = pubs["01db3507-0e04-46bd-9335-e9bdda37a797"]
        self.assertEqual(boom["chord_callback_id"], "9c0891f4-0797-4214-9589-d19fb5a48619")
        (second,) = boom["chord_callback_chain"]
        self.assertEqual([t["task_id"] for t in second["tasks"]], ["78aeef2e-3d15-447f-983c-fefdaf61c58c", "323b7a65-052e-457b-b7ce-f0cffcc59f0a"])
        self.assertEqual(second["chord_callback"]["task_id"], "82491f0c-4ca2-4960-b8f4-1afca629c2b6")

    def test_chord_in_a_chord_header_is_one_trace_the_outer_group(self):
        traces = {e["trace_id"] for e in events("25e_chord_header_of_chains") if e["kind"] == "task"}
        self.assertEqual(traces, {"d648ed72-8924-4e58-987c-2c27a43f7559"})

    def test_chord_body_shapes(self):
        plain = {"task": "app.tsum", "options": {"task_id": "cb", "chain": [{"task": "app.add", "options": {"task_id": "s2"}},
                                                                             {"task": "app.add", "options": {"task_id": "s1"}}]}}
        self.assertEqual(chord_body(plain), ({"task_id": "cb", "name": "app.tsum"},
                                             [{"task_id": "s1", "name": "app.add"}, {"task_id": "s2", "name": "app.add"}]))
        as_chain = {"task": "celery.chain", "kwargs": {"tasks": [{"task": "app.tsum", "options": {"task_id": "cb"}},
                                                                 {"task": "app.add", "options": {"task_id": "s1"}}]}}
        self.assertEqual(chord_body(as_chain), ({"task_id": "cb", "name": "app.tsum"}, [{"task_id": "s1", "name": "app.add"}]))
        self.assertEqual(chord_body({"task": "celery.chain", "kwargs": {"tasks": []}}), (None, []))
        self.assertEqual(chord_body("not a signature"), (None, []))


class MappingTest(unittest.TestCase):
    def test_every_event_has_the_envelope(self):
        for path in sorted(FIXTURES.glob("*.jsonl")):
            for ev in convert(path):
                self.assertEqual(ev["v"], 1)
                self.assertIn(ev["kind"], ("task", "worker"))
                for key in ("id", "type", "ts", "seq", "pid"):
                    self.assertIn(key, ev, f"{path.stem}: {ev}")
                if ev["kind"] == "task":
                    self.assertTrue(ev["task_id"])
                    self.assertTrue(ev["trace_id"])

    def test_single_success_lifecycle(self):
        types = [e["type"] for e in events("01_single_success")]
        # The live producer turns task_success + postrun[SUCCESS] into one succeeded event.
        self.assertEqual(types, ["published", "received", "started", "succeeded"])
        published = events("01_single_success")[0]
        self.assertEqual(published["queue"], "celery")
        self.assertEqual(published["args"], [2, 3])
        self.assertIsNone(published["host"])
        succeeded = events("01_single_success")[3]
        self.assertEqual(succeeded["result"], 5)
        self.assertEqual(succeeded["host"], "lab1@vm")
        self.assertEqual(succeeded["state"], "SUCCESS")
        self.assertGreater(succeeded["runtime_ms"], 0)
        # Arguments travel once, with the publish; links once, with published/received.
        self.assertNotIn("args", events("01_single_success")[1])
        self.assertNotIn("root_id", succeeded)

    def test_chain_is_announced_in_execution_order(self):
        ids = meta("05_chain")["ids"]["chain_ids_first_to_last"]
        first = events("05_chain")[0]
        self.assertEqual([s["task_id"] for s in first["chain"]], ids[1:])
        received = next(e for e in events("05_chain") if e["type"] == "received" and e["task_id"] == ids[0])
        self.assertEqual([s["task_id"] for s in received["chain"]], ids[1:])

    def test_chord_header_names_its_callback(self):
        m = meta("07_chord")["ids"]
        headers = [e for e in events("07_chord") if e["type"] == "published" and e["task_id"] in m["header_children"]]
        self.assertEqual(len(headers), 3)
        for e in headers:
            self.assertEqual(e["chord_callback_id"], m["callback"])
            self.assertEqual(e["chord_callback_name"], "app.tsum")
            self.assertEqual(e["group_id"], m["header_group_id"])

    def test_chord_inside_chain_announces_header_and_callback(self):
        first = events("09a_chain_with_group")[0]
        (step,) = first["chain"]
        self.assertIsNone(step["group_id"])
        self.assertEqual([t["task_id"] for t in step["tasks"]], ["efef779e-66fe-43eb-b8db-9d3768fde9e4", "46ad16f6-e7b1-48b2-9a47-091fe07f4423"])
        self.assertEqual(step["chord_callback"]["task_id"], "971d4a38-bdda-418e-874e-77070ddb09c3")

    def test_group_members_and_chord_callback_share_the_group_trace(self):
        group = meta("06_group")["ids"]["group_id"]
        self.assertEqual({e["trace_id"] for e in events("06_group")}, {group})
        chord = meta("07_chord")["ids"]
        self.assertEqual({e["trace_id"] for e in events("07_chord")}, {chord["header_group_id"]})

    def test_chain_with_group_stays_in_the_first_tasks_trace(self):
        self.assertEqual({e["trace_id"] for e in events("09a_chain_with_group")}, {"5adc8709-a080-47a4-b72f-56557d872262"})

    def test_retries_and_retry_reason(self):
        evs = events("03_retry_then_success")
        retried = [e for e in evs if e["type"] == "retried"]
        self.assertEqual([e["retries"] for e in retried], [0, 1])
        self.assertEqual(retried[0]["exception"]["type"], "ConnectionError")
        self.assertIn("next_eta", retried[0])
        republished = [e for e in evs if e["type"] == "published"]
        self.assertEqual([e["retries"] for e in republished], [0, 1, 2])

    def test_failure_has_type_message_and_traceback(self):
        failed = next(e for e in events("02_failure") if e["type"] == "failed")
        self.assertEqual(failed["exception"]["type"], "ValueError")
        self.assertIn("boom", failed["exception"]["message"])
        self.assertIn("Traceback", failed["traceback"])

    def test_interrupted_postrun_has_null_state_and_revoke_flags(self):
        evs = events("11c_revoke_terminate_running")
        postrun = next(e for e in evs if e["type"] == "postrun")
        self.assertIn("state", postrun)
        self.assertIsNone(postrun["state"])
        revoked = next(e for e in evs if e["type"] == "revoked")
        self.assertTrue(revoked["terminated"])
        self.assertEqual(revoked["signum"], 15)

    def test_unknown_and_rejected_come_from_the_message_headers(self):
        unknown = next(e for e in events("12_unregistered") if e["type"] == "unknown")
        self.assertEqual(unknown["name"], "does.not.exist")
        rejected = events("17_rejected")
        self.assertEqual([e["task_id"] for e in rejected], ["08b289e2-c21f-4208-acee-2665f466d927"])

    def test_worker_lifecycle(self):
        types = [e["type"] for e in events("00_worker_lifecycle")]
        # Celery sends one heartbeat before worker_ready (CELERY.md §1); the first lifecycle event is online.
        self.assertEqual([t for t in types if t != "heartbeat"][0], "online")
        self.assertIn("heartbeat", types)
        self.assertIn("shutting_down", types)
        self.assertEqual(types[-1], "offline")
        down = next(e for e in events("00_worker_lifecycle") if e["type"] == "shutting_down")
        self.assertEqual(down["how"], "warm")

    def test_eager_runs_are_marked(self):
        started = [e for e in events("24_eager_apply") if e["type"] == "started"]
        self.assertTrue(all(e.get("eager") for e in started))

    def test_trace_key_rules(self):
        self.assertEqual(trace_key({"id": "t", "root_id": "r"}, None, "parent-trace", "ctx"), "parent-trace")
        self.assertEqual(trace_key({"id": "t", "root_id": "r"}, None, None, "ctx"), "ctx")
        self.assertEqual(trace_key({"id": "t", "root_id": "r", "group": "g"}, None, None, None), "g")
        self.assertEqual(trace_key({"id": "t", "root_id": "r"}, {"chain": [{"task": "x", "options": {"task_id": "u", "group_id": "g2"}}]}, None, None), "g2")
        self.assertEqual(trace_key({"id": "t", "root_id": "r"}, None, None, None), "r")
        self.assertEqual(trace_key({"id": "t"}, None, None, None), "t")

    def test_chain_steps_reverse_the_embed(self):
        embed = [{"task": "c", "options": {"task_id": "C"}}, {"task": "b", "options": {"task_id": "B"}}]
        self.assertEqual(chain_steps(embed), [{"task_id": "B", "name": "b"}, {"task_id": "C", "name": "c"}])


if __name__ == "__main__":
    unittest.main()
