"""What the dashboard's pages are made of: the filters an examiner sets and the rows and pages
:mod:`triage.dashboard.reads` answers with (plain data, no SQL, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from triage.queue import PRIORITIES

#: what the state filter offers besides the queue's own states
STATE_FILTERS = ("", "active", "queued", "running", "done", "failed", "cancelled")


@dataclass(frozen=True)
class Filters:
    """What the examiner asked to see; every field optional ("" = all)."""

    case: str = ""
    state: str = ""
    priority: str = ""      # effective priority, the one the dispatcher orders by
    grouped: bool = True    # jobs grouped by case (cases in the order of their most urgent job)
    page: int = 1
    per_page: int = 50

    def __post_init__(self) -> None:
        if self.state not in STATE_FILTERS:
            raise ValueError(f"unknown state filter {self.state!r}")
        if self.priority and self.priority not in PRIORITIES:
            raise ValueError(f"unknown priority {self.priority!r}")
        if self.page < 1 or not 1 <= self.per_page <= 500:
            raise ValueError("page must be 1 or more and per_page 1..500")


@dataclass
class Row:
    """One job as the backlog shows it (times are epoch seconds, UTC)."""

    id: str
    case: str
    exhibit: str
    examiner: str | None
    priority: str
    effective_priority: str
    state: str
    cancel_requested: bool
    position: int | None
    submitted: float
    started: float | None
    finished: float | None
    attempts: int
    failure: str | None
    bytes_done: int
    bytes_total: int
    files_done: int
    known_bad_hits: int
    results_dir: str | None
    eta_seconds: float | None
    rate_bps: float | None          # this job's own bytes/s since it started (running jobs)
    summary: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def aged(self) -> bool:
        return self.state == "queued" and self.effective_priority != self.priority

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


@dataclass
class Page:
    rows: list[Row]
    total: int                       # jobs matching the filters
    filters: Filters
    throughput_bps: float | None
    bytes_waiting: int = 0           # bytes left in every queued and running job (not only this page's)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.filters.per_page))


@dataclass(frozen=True)
class Totals:
    """The whole queue in a few numbers: the header of the page and one sample of the history."""

    time: float
    queued: int
    running: int
    done: int
    failed: int
    cancelled: int
    bytes_waiting: int       # bytes left in queued and running jobs
    bytes_processed: int     # bytes done over every job ever (its rise over time is the throughput)
    throughput_bps: float | None
