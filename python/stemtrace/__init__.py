"""stemtrace: see what Celery actually did.

    import stemtrace
    stemtrace.init(app)        # STEMTRACE_URL, STEMTRACE_TOKEN from the environment

One line in the module that defines the Celery app (imported by clients and workers alike).
"""
from __future__ import annotations

import logging
import warnings
from typing import Any, Optional

from .config import Config, load_config
from .mapping import Mapper
from .scrub import Scrubber
from .sender import Sender
from .trace import TRACE_HEADER, current_trace, trace
from .tracecontext import current_traceparent, traceparent

__all__ = ["init", "init_worker", "trace", "current_trace", "traceparent", "current_traceparent", "Config",
           "TRACE_HEADER", "Producer"]
__version__ = "0.1.0"

log = logging.getLogger("stemtrace")

#: Options of the open-source Python stemtrace's transport: accepted so apps work unchanged, ignored.
_IGNORED_OPTIONS = ("transport_url", "broker_url", "prefix", "ttl", "transport", "max_nodes")


class Producer:
    """What ``init`` sets up: the config, the sender (``sender.drop_counts()``: events this process
    lost, by reason; also reported to the server)."""

    def __init__(self, app: Any, config: Config) -> None:
        from .signals import SignalHandlers

        self.app = app
        self.config = config
        scrub = Scrubber(config.scrub_sensitive_data, config.additional_sensitive_keys, config.safe_keys, config.max_data_size)
        self.sender = Sender(config, Mapper(scrub, config.capture_args, config.capture_result))
        self.handlers = SignalHandlers(app, self.sender, config.heartbeat_interval, config.cache_signal_receivers)
        self.handlers.connect()

    def flush(self, timeout: float = 2.0) -> bool:
        """Sends everything queued in this process; True when nothing is left."""
        return self.sender.flush(timeout)


_producers: dict = {}


def init(app: Any, **options: Any) -> Optional[Producer]:
    """Instruments a Celery app. Safe to call more than once (the first call wins)."""
    config = load_config(**options)
    if not config.enabled:
        return None
    existing = _producers.get(id(app))
    if existing is not None:
        return existing
    producer = Producer(app, config)
    _producers[id(app)] = producer
    return producer


def init_worker(app: Any, **options: Any) -> Optional[Producer]:
    """Drop-in for the open-source stemtrace's ``init_worker``: same options; transport ones ignored."""
    ignored = [k for k in _IGNORED_OPTIONS if k in options]
    if ignored:
        warnings.warn(
            f"stemtrace: {', '.join(ignored)} configured the old Redis/AMQP transport and are ignored; "
            "events now go over HTTPS to STEMTRACE_URL",
            stacklevel=2,
        )
    for key in ignored:
        options.pop(key)
    return init(app, **options)
