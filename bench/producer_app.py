"""Celery app for bench/producer_throughput.py: one no-op task, instrumented when BENCH_INSTRUMENT=1
(BENCH_VARIANT: a diagnostic variant of the instrumented side)."""
import os

from celery import Celery

app = Celery("producer_app", broker=os.environ["BENCH_BROKER"])
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=1, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True)

if os.environ.get("BENCH_INSTRUMENT") == "1" and os.environ.get("BENCH_VARIANT") == "dispatch-only":
    # Celery's own dispatch of the four per-task signals to receivers that do nothing (no stemtrace).
    from celery import signals

    from stemtrace.signals import cache_receivers

    def nothing(**_):
        return None

    for signal in (signals.before_task_publish, signals.task_received, signals.task_prerun, signals.task_postrun):
        signal.connect(nothing, weak=False)
        cache_receivers(signal)
elif os.environ.get("BENCH_INSTRUMENT") == "1":
    import stemtrace

    producer = stemtrace.init(app, url=os.environ["BENCH_SINK"])
    # Diagnostic variants (producer_throughput.py --variant): which part of the producer costs what.
    variant = os.environ.get("BENCH_VARIANT", "")
    if variant == "handlers-only":
        producer.sender.enqueue = lambda item: None  # the handlers' work, no sender thread
    elif variant == "no-gzip":
        import gzip

        gzip.compress = lambda data, *args, **kwargs: data  # what compressing costs (the sink counts plain bodies too)
    elif variant == "no-post":
        producer.sender._post = lambda body: 202  # everything but the HTTP request


@app.task(name="bench.noop")
def noop():
    return None
