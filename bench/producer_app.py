"""Celery app for bench/producer_throughput.py: one no-op task, instrumented when BENCH_INSTRUMENT=1."""
import os

from celery import Celery

app = Celery("producer_app", broker=os.environ["BENCH_BROKER"])
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=1, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True)

if os.environ.get("BENCH_INSTRUMENT") == "1":
    import stemtrace

    stemtrace.init(app, url=os.environ["BENCH_SINK"])


@app.task(name="bench.noop")
def noop():
    return None
