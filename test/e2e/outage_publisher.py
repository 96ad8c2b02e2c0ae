"""A short-lived publisher for the outage test: publishes ``e2e.add`` at a steady rate to the given
queues (instrumented by e2e_app's one line) until the stop file exists, then exits (its exit flush
sends the rest). Writes {queue: [task ids]} as JSON to the output file before it exits.

    python3 outage_publisher.py OUT.json STOPFILE RATE QUEUE [QUEUE...]
"""
import os
import json
import sys
import time

import e2e_app


def main():
    out, stopfile, rate, queues = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
    ids = {q: [] for q in queues}
    start = time.monotonic()
    n = 0
    while not os.path.exists(stopfile):
        for q in queues:
            ids[q].append(e2e_app.add.apply_async((n, 1), queue=q).id)
        n += 1
        # A steady rate, not bursts: the next publish is due at start + n / rate.
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
    with open(out, "w") as f:
        json.dump(ids, f)


if __name__ == "__main__":
    main()
