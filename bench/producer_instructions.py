"""Producer overhead in instructions, a measure this shared VM cannot blur.

Wall-clock rates here move by up to 2x between rounds of the same code (the host's other tenants,
which core the worker and redis land on), so ``producer_throughput.py``'s ratios need many pairs.
This counts the instructions a real ``-P solo`` worker executes (callgrind: user space, all threads,
deterministic to ~0.1 %) to drain N no-op tasks from redis, for a large and a small N, with and
without ``stemtrace.init(app)``; the difference divided by the difference in N is the cost of one
task with start-up and shutdown cancelled out. The client is measured the same way (N publishes).

    /usr/bin/python3 bench/producer_instructions.py [--small 200] [--large 1200]

Takes a few minutes (valgrind runs Python ~50x slower). Writes bench/results/producer-instructions.json.
"""
import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from producer_throughput import QueueLength, ROOT, free_port  # noqa: E402

VALGRIND = ["valgrind", "--tool=callgrind", "--dump-instr=no", "--collect-jumps=no"]


def total_instructions(out_file):
    """The ``totals:``/``summary:`` line of a callgrind output (Ir: instructions executed)."""
    text = Path(out_file).read_text(errors="replace")
    match = re.search(r"^(?:totals|summary):\s+(\d+)", text, re.M)
    return int(match.group(1))


def env_for(instrument, redis_port, sink_url):
    return dict(os.environ, BENCH_BROKER=f"redis://127.0.0.1:{redis_port}/0", BENCH_SINK=sink_url,
                BENCH_INSTRUMENT="1" if instrument else "0", PYTHONPATH=f"{ROOT / 'python'}:{ROOT / 'bench'}")


def publish(instrument, n, redis_port, sink_url, workdir, measure):
    out = workdir / f"client-{int(instrument)}-{n}.out"
    code = f"import producer_app\nfor _ in range({n}):\n    producer_app.noop.delay()\n"
    cmd = ([*VALGRIND, f"--callgrind-out-file={out}"] if measure else []) + [sys.executable, "-c", code]
    subprocess.run(cmd, env=env_for(instrument, redis_port, sink_url), check=True, cwd=ROOT / "bench",
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return total_instructions(out) if measure else None


def drain(instrument, n, redis_port, sink_url, workdir, queue_length):
    out = workdir / f"worker-{int(instrument)}-{n}.out"
    worker = subprocess.Popen(
        [*VALGRIND, f"--callgrind-out-file={out}", sys.executable, "-m", "celery", "-A", "producer_app", "worker", "-P", "solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"count{int(instrument)}@localhost",
         "--loglevel=WARNING"],
        env=env_for(instrument, redis_port, sink_url), cwd=ROOT / "bench", stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while queue_length() > 0:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the worker did not drain the queue")
            time.sleep(0.2)
        time.sleep(1.0)  # the last task's events reach the sender
        os.killpg(worker.pid, signal.SIGTERM)  # warm shutdown: flushes, as a real stop does
        worker.wait(300)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)
    return total_instructions(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--keep", metavar="DIR", help="keep the callgrind outputs there (for callgrind_annotate)")
    args = parser.parse_args()
    import threading
    from producer_throughput import Sink

    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, start_new_session=True)
    sink = Sink()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = sink.url
    counts = {}
    started = time.monotonic()
    try:
        time.sleep(0.5)
        queue_length = QueueLength(redis_port)
        with tempfile.TemporaryDirectory(prefix="stemtrace-callgrind-") as tmp:
            workdir = Path(args.keep or tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            for instrument in (False, True):
                mode = "instrumented" if instrument else "plain"
                for n in (args.small, args.large):
                    # The client publishes under callgrind (its count), then the worker drains them (its count).
                    counts[f"client-{mode}-{n}"] = publish(instrument, n, redis_port, sink_url, workdir, True)
                    counts[f"worker-{mode}-{n}"] = drain(instrument, n, redis_port, sink_url, workdir, queue_length)
                    print(f"{mode} n={n}: client {counts[f'client-{mode}-{n}']:,} worker {counts[f'worker-{mode}-{n}']:,} "
                          f"instructions ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        sink.shutdown()
        redis.terminate()
        redis.wait(10)

    span = args.large - args.small

    def per_task(side, mode):
        return (counts[f"{side}-{mode}-{args.large}"] - counts[f"{side}-{mode}-{args.small}"]) / span

    summary = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "small": args.small, "large": args.large, "counts": counts, "per_task": {}}
    for side in ("worker", "client"):
        plain, instr = per_task(side, "plain"), per_task(side, "instrumented")
        summary["per_task"][side] = {"plain": round(plain), "instrumented": round(instr),
                                     "overhead": round(instr - plain), "overhead_pct": round((instr / plain - 1) * 100, 2),
                                     # If time followed instructions: the throughput ratio they imply.
                                     "implied_ratio": round(plain / instr, 3)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "producer-instructions.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["per_task"], indent=2))


if __name__ == "__main__":
    main()
