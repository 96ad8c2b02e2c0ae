"""Producer overhead, side by side in one run (issue: ≥ 0.93× uninstrumented on both sides).

Celery 5.2.6 (Debian), redis broker, solo pool, a no-op task, 5,000 tasks. For each mode the
client publishes 5,000 tasks (publish rate), then a worker drains the queue (worker throughput,
timed from the first message taken to the queue being empty). The instrumented producer does
its real work — mapping, scrubbing, trace key, batching, gzip — and POSTs to a loopback sink.

    /usr/bin/python3 bench/producer_throughput.py [--tasks 5000] [--rounds 3]
"""
import argparse
import datetime
import gzip
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink(BaseHTTPRequestHandler):
    """Stands in for stemtrace: accepts every batch and counts its events (proof the producer
    really did its work, not dropped it). HTTP/1.1 with keep-alive, as the Workers runtime answers."""

    protocol_version = "HTTP/1.1"
    received = 0
    events = 0
    connections = 0

    def setup(self):
        Sink.connections += 1
        super().setup()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        Sink.events += len(json.loads(body)["events"])
        Sink.received += 1
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def redis_llen(port, key="celery"):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"*2\r\n$4\r\nLLEN\r\n${len(key)}\r\n{key}\r\n".encode())
        return int(s.recv(64).decode().strip()[1:])


def cpu_seconds(pid):
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_mode(instrument, tasks, redis_port, sink_url):
    env = dict(os.environ, BENCH_BROKER=f"redis://127.0.0.1:{redis_port}/0", BENCH_SINK=sink_url,
               BENCH_INSTRUMENT="1" if instrument else "0", PYTHONPATH=f"{ROOT / 'python'}:{ROOT / 'bench'}")
    # 1. publish in a fresh client process
    publish = subprocess.run(
        [sys.executable, "-c", f"""
import time, producer_app
n = {tasks}
producer_app.noop.delay()  # connect first
t = time.perf_counter()
for _ in range(n - 1):
    producer_app.noop.delay()
print(time.perf_counter() - t)
"""], env=env, capture_output=True, text=True, check=True)
    publish_s = float(publish.stdout.strip().splitlines()[-1])
    # 2. drain with a solo worker
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "producer_app", "worker", "-P", "solo", "--without-gossip",
                               "--without-mingle", "--without-heartbeat", "-n", f"bench{int(instrument)}@localhost", "--loglevel=WARNING"],
                              env=env, cwd=ROOT / "bench", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while redis_llen(redis_port) >= tasks:
            time.sleep(0.002)
        t0, cpu0 = time.perf_counter(), cpu_seconds(worker.pid)
        while redis_llen(redis_port) > 0:
            time.sleep(0.005)
        drain_s = time.perf_counter() - t0
        cpu_s = cpu_seconds(worker.pid) - cpu0
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)
    return {"publish_per_s": (tasks - 1) / publish_s, "worker_per_s": tasks / drain_s,
            "worker_cpu_us_per_task": cpu_s / tasks * 1e6}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, start_new_session=True)
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
    results = {"plain": [], "instrumented": []}
    load_before = os.getloadavg()[0]
    try:
        time.sleep(0.5)
        for i in range(args.rounds):
            # Alternate, and swap which goes first, so both modes see the same machine state.
            for instrument in ((False, True) if i % 2 == 0 else (True, False)):
                results["instrumented" if instrument else "plain"].append(run_mode(instrument, args.tasks, redis_port, sink_url))
            print(json.dumps({k: {m: round(x) for m, x in v[-1].items()} for k, v in results.items()}), flush=True)
    finally:
        sink.shutdown()
        redis.terminate()
        redis.wait(10)

    def med(mode, key):
        return statistics.median(r[key] for r in results[mode])

    import celery

    summary = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, Celery {celery.__version__}",
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "tasks": args.tasks, "rounds": args.rounds, "sink_batches": Sink.received, "sink_events": Sink.events,
        "sink_connections": Sink.connections,
        # Per instrumented round: 1 published per task (client) + received, started, succeeded (worker).
        "expected_events": args.rounds * args.tasks * 4,
        "worker_per_s": {"plain": round(med("plain", "worker_per_s")), "instrumented": round(med("instrumented", "worker_per_s"))},
        "publish_per_s": {"plain": round(med("plain", "publish_per_s")), "instrumented": round(med("instrumented", "publish_per_s"))},
    }
    summary["worker_ratio"] = round(summary["worker_per_s"]["instrumented"] / summary["worker_per_s"]["plain"], 3)
    summary["publish_ratio"] = round(summary["publish_per_s"]["instrumented"] / summary["publish_per_s"]["plain"], 3)
    summary["worker_cpu_us_per_task"] = {"plain": round(med("plain", "worker_cpu_us_per_task")),
                                         "instrumented": round(med("instrumented", "worker_cpu_us_per_task"))}
    summary["raw"] = results
    out = ROOT / "bench" / "results" / "producer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "raw"}, indent=2))
    write_markdown(summary, ROOT / "bench" / "results" / "producer.md")


#: Appended to producer.md: the profile behind the numbers (update it when the hot path changes).
NOTES = """
## Where the instrumented worker's time goes (instruction counts, 2026-12-01)

Wall-clock rates on this shared 2-core machine swing by 2x between rounds when other jobs run, so
the changes below were measured with `valgrind --tool=callgrind` (deterministic instruction counts,
user space, all threads): a real `-P solo` worker draining 1200 vs 200 no-op tasks from redis, the
difference divided by 1000; the client likewise publishing 1100 vs 100 tasks.

| per task | uninstrumented | instrumented before (0a91457) | instrumented after (52e12cf) |
|---|---|---|---|
| worker (drain) | 2.664 M instructions | +321 k (+12.0 %) | +203 k (+7.6 %) |
| client (publish) | 1.692 M instructions | +191 k (+11.3 %) | +115 k (+6.8 %) |

Instructions are a proxy, not the target: before, +12.0 % matched the recorded 0.904x; +7.6 % would be
about 0.93x. The wall-clock runs (table above) are what the target is judged on, and on this shared
machine they were not reproducible to a few percent (see the round-by-round spread).

Of the worker's remaining overhead: Celery's own `Signal.send` for the three signals ~45 k (a lock,
the receiver list rebuilt per call; ~14 k less with `use_caching`, not done: it is Celery's global
state and an unhashable sender would then raise inside Celery), the handlers ~60 k, the sender
thread ~40 k per task (id and seq, join, gzip: zlib releases the GIL, so on 2 cores gzip mostly
overlaps with the task), the rest garbage collection, the heartbeat thread and the POSTs.

What changed (see git log): published/received/started/succeeded are written as JSON in the handler
(`stemtrace/fastpath.py`; started and succeeded share the attempt's fields, args and results are still
scrubbed in the sender thread) instead of a record mapped and json-encoded later: the general path
stays for everything else and the tests hold both to identical events. ts and runtime_ms are written
from integer clocks, event ids are a per-process prefix + seq, and each process keeps one HTTP
connection alive (the sink here is HTTP/1.1, as the Workers runtime; before, a new connection per batch).
Not done: `gc.freeze()` (it would speed up the whole worker, not the producer, and is the app's call).
"""


def write_markdown(s, path):
    """bench/results/producer.md: the numbers a reader checks the target against."""
    target = 0.93
    ok = lambda r: "meets" if r >= target else "BELOW"
    rows = "\n".join(
        f"| {i + 1} | {round(p['worker_per_s'])} | {round(q['worker_per_s'])} | {round(p['worker_cpu_us_per_task'])} | "
        f"{round(q['worker_cpu_us_per_task'])} | {round(p['publish_per_s'])} | {round(q['publish_per_s'])} |"
        for i, (p, q) in enumerate(zip(s["raw"]["plain"], s["raw"]["instrumented"])))
    path.write_text(f"""# Producer overhead (bench/producer_throughput.py)

Target: an instrumented Celery worker and client keep at least {target}x of their uninstrumented rate.

- Date: {s['date']}
- Machine: {s['machine']}; 1-minute load average {s['load_average_1m']['before']} before, {s['load_average_1m']['after']} after
  (the machine is shared with other test runs: rounds alternate and the medians are compared)
- Setup: redis-server on loopback, `-P solo`, a no-op task, {s['tasks']} tasks per round, {s['rounds']} rounds per mode;
  instrumented = `stemtrace.init(app)` with its real mapping, scrubbing, trace key, batching and gzip,
  POSTing to a loopback HTTP/1.1 sink that received {s["sink_events"]} events in {s["sink_batches"]} batches over {s["sink_connections"]} connections
  (expected: {s["expected_events"]} task events plus the worker lifecycle events).

| median | uninstrumented | instrumented | ratio | target |
|---|---|---|---|---|
| worker throughput (tasks/s) | {s['worker_per_s']['plain']} | {s['worker_per_s']['instrumented']} | **{s['worker_ratio']}** | {ok(s['worker_ratio'])} |
| client publish rate (tasks/s) | {s['publish_per_s']['plain']} | {s['publish_per_s']['instrumented']} | **{s['publish_ratio']}** | {ok(s['publish_ratio'])} |
| worker CPU per task (µs, all threads) | {s['worker_cpu_us_per_task']['plain']} | {s['worker_cpu_us_per_task']['instrumented']} | | |

| round | worker/s plain | worker/s instr. | CPU µs plain | CPU µs instr. | publish/s plain | publish/s instr. |
|---|---|---|---|---|---|---|
{rows}

Run: `/usr/bin/python3 bench/producer_throughput.py [--tasks 5000] [--rounds 5]` (writes this file and producer.json).
""" + NOTES)


if __name__ == "__main__":
    main()
