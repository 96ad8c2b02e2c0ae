"""Converts the recorded signal fixtures (test/fixtures/celery-5.2.6/*.jsonl) into wire events with
the producer's own mapping, simulating the trace header exactly as the live producer carries it.

    python3 -m stemtrace.recordings test/fixtures/celery-5.2.6 test/fixtures/wire
"""
from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Set

from .mapping import Mapper, trace_key
from .scrub import Scrubber
from .trace import TRACE_HEADER

#: uuid5 namespace so converted fixtures are byte-for-byte reproducible.
_NAMESPACE = uuid.UUID("5f0c7e52-6a43-4f7e-9a53-3a7c8d1b9e10")


def pool_name(pool_cls: Any) -> Any:
    """The recorder's ``"<class 'celery.concurrency.prefork.TaskPool'>"`` → ``prefork``: the pool's
    module, as the live producer names it (signals.SignalHandlers._worker_info)."""
    text = str(pool_cls or "")
    dotted = text.split("'")[1] if text.count("'") >= 2 else text
    module = dotted.rsplit(".", 1)[0] if "." in dotted else dotted
    return module.rsplit(".", 1)[-1].lower() or None


def to_record(line: Dict[str, Any], traces: Dict[str, str], workers: Dict[str, Dict[str, Any]], published: Set[str]) -> Dict[str, Any]:
    """A recorded line in the recorder's shape → the record ``extract`` builds from live signals.
    ``traces`` (task id → trace key) and ``published`` (ids seen published) carry state between lines."""
    rec = {k: v for k, v in line.items() if not k.startswith("lab_")}
    signal = line["signal"]
    if line.get("lab_request_matches_task_id") is False:
        rec.pop("request", None)  # signals from the main process: sender.request is not this task's
    if signal == "task_postrun" and line.get("state") == "SUCCESS":
        # The live producer connects no task_success receiver: postrun[SUCCESS] carries the return
        # value and becomes the one `succeeded` event (signals.on_postrun).
        rec["signal"] = "task_success"
        rec["result"] = line.get("retval")
    if "lab_runtime_s" in line:
        rec["runtime_s"] = line["lab_runtime_s"]
    if "traceback_text" in line or isinstance(line.get("einfo"), dict):
        einfo = line.get("einfo") or {}
        rec["traceback"] = einfo.get("traceback") if isinstance(einfo, dict) and einfo.get("traceback") else line.get("traceback_text")
    if signal == "task_retry" and isinstance(line.get("reason"), dict):
        rec["reason"] = line["reason"]
    publishing = line.get("lab_publishing_task")
    if signal == "before_task_publish":
        headers = line.get("headers") or {}
        publisher_id = publishing.get("id") if isinstance(publishing, dict) else None
        rec["publishing_task"] = {"id": publisher_id} if publisher_id else None
        trace = trace_key(headers, (line.get("body") or {}).get("embed"), traces.get(publisher_id) if publisher_id else None, None)
        # The live producer writes this into headers["stemtrace_trace_id"]; every later event reads it back.
        traces.setdefault(headers.get("id"), trace)
        published.add(headers.get("id"))
        rec["trace_id"] = traces[headers.get("id")]
    elif line.get("task_id") or (line.get("message") or {}).get("headers", {}).get("id"):
        task_id = line.get("task_id") or line["message"]["headers"]["id"]
        if task_id not in traces:
            # Never published by an instrumented client (raw messages, eager runs): derive it the same way.
            src = (line.get("message") or {}).get("headers") or line.get("request") or {}
            traces[task_id] = trace_key({"id": task_id, "root_id": src.get("root_id"), "group": src.get("group")}, None, None, None)
        rec["trace_id"] = traces[task_id]
        request = rec.get("request")
        if signal == "task_received" and task_id in published and isinstance(request, dict) and isinstance(request.get("request_dict"), dict):
            # The header the live producer's publish added (the recorder's client had no producer).
            rec["request"] = dict(request, request_dict=dict(request["request_dict"], **{TRACE_HEADER: traces[task_id]}))
    node = line.get("nodename")
    if node:
        info = workers.setdefault(node, {})
        if signal == "worker_init":
            info.update(concurrency=line.get("concurrency"), pool=pool_name(line.get("pool_cls")))
        if signal == "heartbeat_sent":
            rec["freq"] = line.get("interval")
            rec["active"] = []
        if signal == "worker_ready":
            rec.update(info)
    return rec


def convert(path: Path) -> List[Dict[str, Any]]:
    """All wire events of one recording, in recording order, with deterministic ids."""
    scenario = path.stem
    lines = [json.loads(line_) for line_ in path.read_text().splitlines() if line_.strip()]
    counter = iter(range(1, 1_000_000))
    mapper = Mapper(Scrubber(), new_id=lambda: str(uuid.uuid5(_NAMESPACE, f"{scenario}:{next(counter)}")))
    traces: Dict[str, str] = {}
    workers: Dict[str, Dict[str, Any]] = {}
    published: Set[str] = set()
    # task_success lines that a postrun[SUCCESS] of the same process follows: the live producer
    # emits those successes at postrun (see to_record), so they are skipped here.
    merged = {(line_.get("pid"), line_.get("task_id")) for line_ in lines if line_["signal"] == "task_postrun" and line_.get("state") == "SUCCESS"}
    events = []
    for line in lines:
        if line["signal"] == "task_success" and (line.get("pid"), line.get("task_id")) in merged:
            continue
        event = mapper(to_record(line, traces, workers, published), line.get("lab_seq", 0))
        if event is not None:
            events.append(event)
    return events


def main(argv: List[str]) -> int:
    src = Path(argv[1] if len(argv) > 1 else "test/fixtures/celery-5.2.6")
    dst = Path(argv[2] if len(argv) > 2 else "test/fixtures/wire")
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.jsonl")):
        events = convert(path)
        out = dst / f"{path.stem}.json"
        out.write_text(json.dumps({"scenario": path.stem, "events": events}, indent=1, sort_keys=True) + "\n")
        print(f"{path.stem}: {len(events)} events → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
