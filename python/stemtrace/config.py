"""Producer options, from arguments first, then environment variables, then defaults."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, Optional

DEFAULT_URL = "http://127.0.0.1:8787"


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Config:
    """Everything the producer can be told. See python/README.md for each option."""

    url: str = DEFAULT_URL
    token: Optional[str] = None
    #: A Cloudflare Access service token (its client id and secret): Access lets the batch through
    #: to the Worker, which accepts the service token's identity for ingest (docs/deploy.md).
    access_client_id: Optional[str] = None
    access_client_secret: Optional[str] = None
    capture_args: bool = True
    capture_result: bool = True
    scrub_sensitive_data: bool = True
    additional_sensitive_keys: FrozenSet[str] = field(default_factory=frozenset)
    safe_keys: FrozenSet[str] = field(default_factory=frozenset)
    max_data_size: int = 10_000
    heartbeat_interval: float = 2.0
    queue_size: int = 10_000
    #: The wire format's largest batch: half the POSTs (and Workers requests) of 500 on a busy worker.
    batch_size: int = 1000
    flush_interval: float = 0.5
    timeout: float = 5.0
    #: A display name for this process's node. The wire format has no field for it yet: kept for
    #: drop-in compatibility, not sent.
    node_alias: Optional[str] = None
    #: The OSS stemtrace's option (a digit = ``args[i]``, else ``kwargs[key]``); accepted, not sent
    #: (no wire field; inert in the OSS producer too, its issue #69).
    node_alias_from_arguments: Optional[str] = None
    #: Turn on Celery's own per-sender receiver cache for the signals every task sends
    #: (``signals.ReceiverCache``); off leaves Celery's signals exactly as they were.
    cache_signal_receivers: bool = True
    enabled: bool = True
    #: The outage buffer: events mapped but not yet accepted by the server, held in memory through an
    #: outage (retried with exponential backoff and jitter), bounded by count and by JSON size;
    #: when full the oldest go first (counted ``buffer_full``), or to the spool when there is one.
    buffer_max_events: int = 100_000
    buffer_max_bytes: int = 64 * 1024 * 1024
    #: The first retry after a failed POST, and the most the backoff grows to (seconds).
    retry_initial: float = 0.5
    retry_max: float = 15.0
    #: A directory for batches that cannot be sent now (``spool``); None: memory only.
    spool_dir: Optional[str] = None
    spool_max_bytes: int = 512 * 1024 * 1024
    #: How long the exit flush (atexit, a pool child's shutdown) tries before it spools or gives up.
    exit_flush_s: float = 10.0

    @property
    def endpoint(self) -> str:
        """The ingest URL. ``STEMTRACE_URL`` is the server's base URL; one given with the ingest path
        already on it (a common slip: it was a 404 for every batch) is used as it is."""
        base = self.url.rstrip("/")
        return base if base.endswith("/v1/events") else base + "/v1/events"

    def auth_headers(self) -> Dict[str, str]:
        """What proves the producer may send: the ingest token, and/or an Access service token."""
        headers: Dict[str, str] = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.access_client_id and self.access_client_secret:
            headers["CF-Access-Client-Id"] = self.access_client_id
            headers["CF-Access-Client-Secret"] = self.access_client_secret
        return headers


def load_config(**options: Any) -> Config:
    """Builds a Config from keyword options, falling back to STEMTRACE_* environment variables."""

    def keys(value: Optional[Iterable[str]]) -> FrozenSet[str]:
        return frozenset(k.lower() for k in (value or ()))

    env_extra = [k for k in os.environ.get("STEMTRACE_SENSITIVE_KEYS", "").split(",") if k.strip()]
    return Config(
        url=options.get("url") or os.environ.get("STEMTRACE_URL") or DEFAULT_URL,
        token=options.get("token") or os.environ.get("STEMTRACE_TOKEN") or None,
        access_client_id=options.get("access_client_id") or os.environ.get("STEMTRACE_ACCESS_CLIENT_ID") or None,
        access_client_secret=options.get("access_client_secret") or os.environ.get("STEMTRACE_ACCESS_CLIENT_SECRET") or None,
        capture_args=options.get("capture_args", _env_bool("STEMTRACE_CAPTURE_ARGS", True)),
        capture_result=options.get("capture_result", _env_bool("STEMTRACE_CAPTURE_RESULT", True)),
        scrub_sensitive_data=options.get("scrub_sensitive_data", _env_bool("STEMTRACE_SCRUB", True)),
        additional_sensitive_keys=keys(options.get("additional_sensitive_keys")) | keys(env_extra),
        safe_keys=keys(options.get("safe_keys")),
        max_data_size=int(options.get("max_data_size", _env_float("STEMTRACE_MAX_DATA_SIZE", 10_000))),
        heartbeat_interval=float(options.get("heartbeat_interval", _env_float("STEMTRACE_HEARTBEAT_INTERVAL", 2.0))),
        queue_size=int(options.get("queue_size", _env_float("STEMTRACE_QUEUE_SIZE", 10_000))),
        batch_size=max(1, min(1000, int(options.get("batch_size", 1000)))),  # the server takes 1..1000
        flush_interval=float(options.get("flush_interval", 0.5)),
        timeout=float(options.get("timeout", 5.0)),
        node_alias=options.get("node_alias") or os.environ.get("STEMTRACE_NODE_ALIAS") or None,
        node_alias_from_arguments=(str(options["node_alias_from_arguments"])
                                   if options.get("node_alias_from_arguments") is not None else None),
        cache_signal_receivers=options.get("cache_signal_receivers", _env_bool("STEMTRACE_CACHE_SIGNAL_RECEIVERS", True)),
        enabled=options.get("enabled", _env_bool("STEMTRACE_ENABLED", True)),
        buffer_max_events=max(1, int(options.get("buffer_max_events", _env_float("STEMTRACE_BUFFER_EVENTS", 100_000)))),
        buffer_max_bytes=max(1, int(options.get("buffer_max_bytes", _env_float("STEMTRACE_BUFFER_BYTES", 64 * 1024 * 1024)))),
        retry_initial=max(0.01, float(options.get("retry_initial", _env_float("STEMTRACE_RETRY_INITIAL_S", 0.5)))),
        retry_max=max(0.01, float(options.get("retry_max", _env_float("STEMTRACE_RETRY_MAX_S", 15.0)))),
        spool_dir=options.get("spool_dir") or os.environ.get("STEMTRACE_SPOOL_DIR") or None,
        spool_max_bytes=max(1, int(options.get("spool_max_bytes", _env_float("STEMTRACE_SPOOL_MAX_BYTES", 512 * 1024 * 1024)))),
        exit_flush_s=max(0.0, float(options.get("exit_flush_s", _env_float("STEMTRACE_EXIT_FLUSH_S", 10.0)))),
    )
