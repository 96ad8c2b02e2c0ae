"""Every event the producer makes validates against THE contract, shared/wire.ts (zod), run by the
repository's own Node: the converted fixtures (test/fixtures/wire) and events from live signals."""
import json
import os
import subprocess
import tempfile
import unittest
from pathlib import Path

from stemtrace.recordings import convert

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "node_modules" / ".bin" / "node"
RECORDINGS = ROOT / "test" / "fixtures" / "celery-5.2.6"
WIRE = ROOT / "test" / "fixtures" / "wire"

# Reads {"name": [events]} on stdin; prints {"name": ["index: issue", ...]} for invalid events.
_CHECK = """
import { Event } from "./shared/wire.ts";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = {};
for (const [name, events] of Object.entries(JSON.parse(input))) {
  out[name] = [];
  events.forEach((e, i) => {
    const r = Event.safeParse(e);
    if (!r.success) out[name].push(`${i} (${e.type}): ${JSON.stringify(r.error.issues).slice(0, 300)}`);
  });
}
console.log(JSON.stringify(out));
"""


def validate(batches):
    """{name: [events]} → {name: [problems]} through shared/wire.ts."""
    with tempfile.NamedTemporaryFile("w", suffix=".mts", dir=ROOT, delete=False) as script:
        script.write(_CHECK)
    try:
        res = subprocess.run([str(NODE), "--experimental-strip-types", "--no-warnings", script.name], cwd=ROOT,
                             input=json.dumps(batches), capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(script.name)
    if res.returncode != 0:
        raise AssertionError(res.stderr[-2000:])
    return json.loads(res.stdout)


@unittest.skipUnless(NODE.exists() and (ROOT / "node_modules" / "zod").exists(), "needs npm install (Node 22 + zod)")
class WireSchemaTest(unittest.TestCase):
    def test_committed_fixtures_are_what_the_converter_makes_and_validate(self):
        batches = {}
        for path in sorted(RECORDINGS.glob("*.jsonl")):
            committed = json.loads((WIRE / f"{path.stem}.json").read_text())
            events = convert(path)
            # Round-trip through JSON: the committed file is JSON, tuples become lists.
            self.assertEqual(committed["events"], json.loads(json.dumps(events)), f"{path.stem}: regenerate test/fixtures/wire")
            batches[path.stem] = events
        self.assertTrue(batches)
        problems = {k: v for k, v in validate(batches).items() if v}
        self.assertEqual(problems, {})

    def test_live_signal_events_validate(self):
        from tests.test_signals import Capture, make_app

        import stemtrace

        app, add, boom = make_app("schema1")
        producer = stemtrace.init(app, url="http://127.0.0.1:9", flush_interval=0.05)
        capture = Capture()
        producer.sender._post = capture
        add.delay(1, 2)
        add.apply(args=(1, 2))
        boom.apply(kwargs={"password": "x"})
        producer.flush(5)
        self.assertGreaterEqual(len(capture.events), 5)
        self.assertEqual(validate({"live": capture.events}), {"live": []})


if __name__ == "__main__":
    unittest.main()
