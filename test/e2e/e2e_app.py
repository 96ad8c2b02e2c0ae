"""The Celery app of the end-to-end suite: real tasks, instrumented with the one line users add."""
import os
import time

from celery import Celery

import stemtrace

broker = os.environ.get("E2E_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("e2e_app", broker=broker, backend=broker.rsplit("/", 1)[0] + "/1")
app.conf.update(worker_prefetch_multiplier=1, task_acks_late=False, broker_connection_retry_on_startup=True,
                result_expires=600, worker_hijack_root_logger=False)

stemtrace.init(app, heartbeat_interval=float(os.environ.get("E2E_HEARTBEAT", "1")))


@app.task(name="e2e.add")
def add(x, y):
    """Adds two numbers."""
    return x + y


@app.task(name="e2e.mul")
def mul(x, y):
    return x * y


@app.task(name="e2e.tsum")
def tsum(values):
    return sum(values)


@app.task(name="e2e.boom")
def boom(x=None):
    raise ValueError(f"boom! x={x!r}")


@app.task(name="e2e.flaky", bind=True, max_retries=3)
def flaky(self, fail_times):
    if self.request.retries < fail_times:
        raise self.retry(exc=ConnectionError(f"transient failure #{self.request.retries + 1}"), countdown=0.2)
    return f"ok after {self.request.retries} retries"


@app.task(name="e2e.spawner")
def spawner(n):
    return [add.delay(i, i).id for i in range(n)]


@app.task(name="e2e.sleeper")
def sleeper(seconds):
    time.sleep(seconds)
    return f"slept {seconds}"


@app.task(name="e2e.ratio")
def ratio(x, y):
    """NaN, ±Infinity in and out: JSON cannot carry them (the producer marks them)."""
    return {"ratio": x / y if y else float("nan"), "bounds": [float("-inf"), float("inf")]}
