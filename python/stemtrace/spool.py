"""The optional disk spool (``STEMTRACE_SPOOL_DIR``): batches the sender could not send, as files,
replayed when the server answers again, by this process or any other one sharing the directory
(after a restart too).

One file per batch: the gzipped POST body (``{"events":[...]}``), written under a temporary name
and renamed into place (a reader never sees half a file). Names sort oldest first and carry the
writer's pid and the event count: ``<time_ns>-<pid>-<n>-<events>.json.gz``. Several processes
(a prefork pool's children and its main process) share the directory safely: a process takes a file
by renaming it to ``<name>.claimed-<pid>`` (only one rename can succeed), deletes it once the server
accepted it, and renames it back when the POST failed. Claims of processes that no longer exist are
released. The directory is bounded (``max_bytes``): the oldest files go first, and their events are
counted as dropped. A batch sent twice (a claim released after the server stored it) is harmless:
the server deduplicates events by id.
"""
from __future__ import annotations

import gzip
import itertools
import os
import time
from typing import List, Optional, Tuple

SUFFIX = ".json.gz"
_CLAIM = ".claimed-"


#: This process's own claims, whichever Spool made them (a claim under our pid that is not here is
#: an earlier process's that had the same pid).
_HELD: set = set()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def _events_in(name: str) -> int:
    try:
        return int(name[: -len(SUFFIX)].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


class Spool:
    """A directory of unsent batches. Every method is safe to call from several processes at once;
    none raises (an unwritable directory means the events stay in memory, or are counted dropped)."""

    def __init__(self, directory: str, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._n = itertools.count(1)
        self._held = _HELD

    def _ready(self) -> List[Tuple[str, int]]:
        """(name, size) of the unclaimed batch files, oldest first."""
        out = []
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                        try:
                            out.append((entry.name, entry.stat().st_size))
                        except FileNotFoundError:
                            pass  # claimed meanwhile
        except FileNotFoundError:
            return []
        out.sort()
        return out

    def _used(self) -> int:
        total = 0
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    try:
                        total += entry.stat().st_size
                    except FileNotFoundError:
                        pass
        except FileNotFoundError:
            pass
        return total

    def write(self, events: List[str]) -> Tuple[bool, int]:
        """Writes one batch (events as JSON). (written, events of older files deleted to make room)."""
        body = gzip.compress(("{\"events\":[" + ",".join(events) + "]}").encode(), 1)
        evicted = 0
        try:
            os.makedirs(self.directory, exist_ok=True)
            if len(body) > self.max_bytes:
                return False, 0
            used = self._used()
            if used + len(body) > self.max_bytes:
                for name, size in self._ready():  # oldest first
                    try:
                        os.unlink(os.path.join(self.directory, name))
                    except FileNotFoundError:
                        continue  # another process took it
                    evicted += _events_in(name)
                    used -= size
                    if used + len(body) <= self.max_bytes:
                        break
                if used + len(body) > self.max_bytes:
                    return False, evicted  # what is left is claimed by senders right now
            pid = os.getpid()
            n = next(self._n)
            tmp = os.path.join(self.directory, f".tmp-{pid}-{n}")
            with open(tmp, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(self.directory, f"{time.time_ns():020d}-{pid}-{n}-{len(events)}{SUFFIX}"))
            return True, evicted
        except OSError:
            return False, evicted

    def claim(self) -> Optional[Tuple[str, bytes, int]]:
        """Takes the oldest unclaimed batch: (claimed path, gzipped body, events), or None."""
        self._release_orphans()
        pid = os.getpid()
        for name, _ in self._ready():
            path = os.path.join(self.directory, name)
            claimed = f"{path}{_CLAIM}{pid}"
            try:
                os.rename(path, claimed)
                self._held.add(claimed)
            except FileNotFoundError:
                continue  # another process claimed it first
            except OSError:
                return None
            try:
                with open(claimed, "rb") as f:
                    return claimed, f.read(), _events_in(name)
            except OSError:
                self.release(claimed)
                return None
        return None

    def done(self, claimed: str) -> None:
        """The server accepted (or refused for good) a claimed batch: it leaves the spool."""
        self._held.discard(claimed)
        try:
            os.unlink(claimed)
        except OSError:
            pass

    def release(self, claimed: str) -> None:
        """A claimed batch could not be sent: back in the spool for the next attempt."""
        self._held.discard(claimed)
        try:
            os.rename(claimed, claimed.rsplit(_CLAIM, 1)[0])
        except OSError:
            pass

    def _release_orphans(self) -> None:
        """Claims of processes that have exited (killed mid-POST) go back to the spool."""
        try:
            with os.scandir(self.directory) as entries:
                names = [e.name for e in entries if _CLAIM in e.name]
        except FileNotFoundError:
            return
        for name in names:
            try:
                pid = int(name.rsplit(_CLAIM, 1)[1])
            except ValueError:
                continue
            path = os.path.join(self.directory, name)
            if (path not in self._held) if pid == os.getpid() else not _pid_alive(pid):
                self.release(path)

    def pending(self) -> Tuple[int, int]:
        """(files, events) waiting in the spool."""
        ready = self._ready()
        return len(ready), sum(_events_in(name) for name, _ in ready)
