"""What the audit log tells the backlog page: which jobs were escalated, by which rule or whom.

The queue stores a job's priority, not why it has it. The audit log does: an ``escalate``
record (a raise by an examiner, or the dispatcher's known-bad rule) or a ``priority``
record (any other change). :class:`PriorityMarks` reads the log incrementally (only the
bytes appended since the last poll) and keeps each job's latest such record, so marking
escalations costs nothing per poll even with a long log. The log is only read here.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from triage.audit import log_path, read


class PriorityMarks:
    def __init__(self, home: Path) -> None:
        self.path = log_path(home)
        self._offset = 0
        self._inode: int | None = None
        self._last: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            try:
                st = self.path.stat()
            except OSError:
                return
            if st.st_ino != self._inode or st.st_size < self._offset:  # a new log: start over
                self._inode, self._offset, self._last = st.st_ino, 0, {}
            if st.st_size == self._offset:
                return
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(st.st_size - self._offset)
            end = data.rfind(b"\n") + 1  # a line being written is read next time
            for raw in data[:end].splitlines():
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("action") in ("escalate", "priority") and rec.get("job"):
                    self._last[str(rec["job"])] = rec
            self._offset += end

    def mark(self, job: str) -> dict[str, Any] | None:
        """The job's latest priority record if it was an escalation: {rule|by, from, to, time}."""
        rec = self._last.get(job)
        if rec is None or rec.get("action") != "escalate":
            return None
        d = rec.get("details") if isinstance(rec.get("details"), dict) else {}
        return {"rule": d.get("rule"), "by": d.get("by") or rec.get("user"), "from": d.get("from"),
                "to": d.get("to"), "time": rec.get("time")}


def job_records(home: Path, job: str) -> list[dict[str, Any]]:
    """The job's audit records, in log order."""
    return read(log_path(home), job=job)
