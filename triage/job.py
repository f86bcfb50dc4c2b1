"""The job model of the queue: priorities, states, ids and the :class:`Job` record.

Kept apart from the SQL (:mod:`triage.queuedb`) and the operations (:mod:`triage.queue`)
so that readers such as ``triage status`` and the dashboard depend on a small,
stable shape: a frozen dataclass that turns into JSON with :meth:`Job.to_dict`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, fields
from typing import Any

from triage.rules.errors import InputError

#: priority names → Dask task priority numbers (higher runs first)
PRIORITIES: dict[str, int] = {"low": 0, "normal": 1, "high": 2, "critical": 3}
PRIORITY_NAMES: dict[int, str] = {v: k for k, v in PRIORITIES.items()}
STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
AGE_CAP = "high"  # ageing never makes a job critical: only an examiner does

_ID = re.compile(r"^[Jj]?0*(\d+)$")


class JobNotFoundError(InputError):
    """No job (or case) by that name in the queue."""


class JobStateError(InputError):
    """The job's state does not allow the action (cancel a finished job, retry a queued one)."""


def job_id(seq: int) -> str:
    return f"J{seq:06d}"


def parse_job_id(text: str) -> int | None:
    """The row number a job id names, or None when ``text`` is not shaped like one."""
    m = _ID.match(text.strip())
    return int(m.group(1)) if m else None


def check_priority(name: str) -> int:
    if name not in PRIORITIES:
        raise InputError(f"{name!r}: unknown priority; known: {', '.join(sorted(PRIORITIES, key=PRIORITIES.get))}")
    return PRIORITIES[name]


def utc(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Job:
    """One device image (or the images of one exhibit) waiting for, in, or past triage."""

    id: str
    case: str
    exhibit: str
    priority: str
    effective_priority: str      # priority after ageing (queued jobs only)
    state: str
    images: tuple[str, ...]
    image_formats: tuple[str, ...]
    image_sizes: tuple[int, ...]
    examiner: str | None
    note: str | None
    submitted: dt.datetime
    started: dt.datetime | None
    finished: dt.datetime | None
    attempts: int
    failure: str | None
    bytes_done: int
    bytes_total: int
    files_done: int
    known_bad_hits: int          # see triage.knownbad: exact known-bad hashes + near-duplicates of known-bad pictures
    results_dir: str | None
    dispatcher: str | None       # host:pid of the dispatcher running it
    heartbeat: dt.datetime | None  # the dispatcher's last progress report on it (running jobs)
    cancel_requested: bool
    position: int | None = None       # 1 = claimed next; queued jobs only
    eta_seconds: float | None = None  # until done; None without a measured throughput
    summary: dict[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)
    #: only on what submit() returns: True when this submission was already queued or running
    existed: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.priority not in PRIORITIES or self.effective_priority not in PRIORITIES:
            raise ValueError(f"Job {self.id}: unknown priority {self.priority!r}")
        if self.state not in STATES:
            raise ValueError(f"Job {self.id}: unknown state {self.state!r}")

    @property
    def image_size(self) -> int:
        return sum(self.image_sizes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 UTC with Z, tuples as lists."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "existed":
                continue
            v = getattr(self, f.name)
            out[f.name] = iso(v) if isinstance(v, dt.datetime) else list(v) if isinstance(v, tuple) else v
        return out
