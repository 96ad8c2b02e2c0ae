"""The task definitions a worker registers, sent with its `online` event (for the registry page)."""
from __future__ import annotations

import inspect
from typing import Any, Dict, List


def registered_tasks(app: Any) -> List[Dict[str, Any]]:
    """Name, module, signature and first doc line of every task the app registers (Celery's own excluded)."""
    out = []
    for name, task in sorted(app.tasks.items()):
        if name.startswith("celery."):
            continue
        run = getattr(task, "run", None)
        try:
            signature = str(inspect.signature(run)) if run else None
        except (TypeError, ValueError):
            signature = None
        doc = (inspect.getdoc(run) or "").strip().splitlines() if run else []
        out.append({"name": name, "module": getattr(task, "__module__", None), "signature": signature,
                    "doc": doc[0][:500] if doc else None})
    return out
