"""The backlog over time: a sample of the queue every few seconds, kept in a small file of its own.

The queue holds only the present; the charts (jobs and bytes waiting, throughput) need a
past. A thread of the dashboard samples :meth:`QueueReader.totals` into
``<state dir>/dashboard-history.sqlite`` (the queue file is never written by the
dashboard) and trims it to the newest ``keep`` samples. Throughput is the rise of the
bytes processed between two samples over the time between them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from triage.dashboard.background import Background
from triage.dashboard.model import Totals
from triage.dashboard.reads import QueueReader

log = logging.getLogger(__name__)

FILENAME = "dashboard-history.sqlite"


@dataclass(frozen=True)
class Chart:
    """An SVG polyline ready for a template: ``points`` in a ``width`` x ``height`` box."""

    points: str
    peak: float
    last: float | None
    span_seconds: float
    width: int = 600
    height: int = 120


class History(Background):
    THREAD_NAME = "dashboard-history"

    def __init__(self, home: Path, *, every: float = 10.0, keep: int = 8640) -> None:
        super().__init__()
        self.path = Path(home) / FILENAME
        self.home = Path(home)
        self.every = every
        self.keep = keep
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS samples (t REAL PRIMARY KEY, queued INTEGER, running INTEGER,"
                         " done INTEGER, failed INTEGER, cancelled INTEGER, bytes_waiting INTEGER,"
                         " bytes_processed INTEGER, throughput_bps REAL)")
            self._conn = conn
        return self._conn

    def record(self, t: Totals) -> None:
        with self._lock:
            db = self._db()
            db.execute("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (round(t.time, 3), t.queued, t.running, t.done, t.failed, t.cancelled, t.bytes_waiting,
                        t.bytes_processed, t.throughput_bps))
            db.execute("DELETE FROM samples WHERE t < (SELECT t FROM samples ORDER BY t DESC LIMIT 1 OFFSET ?)",
                       (self.keep - 1,))

    def samples(self, limit: int = 360) -> list[sqlite3.Row]:
        """The newest ``limit`` samples, oldest first."""
        with self._lock:
            db = self._db()
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM samples ORDER BY t DESC LIMIT ?", (limit,)).fetchall()
        return rows[::-1]

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self) -> None:
        reader = QueueReader(self.home)
        try:
            while True:
                try:
                    self.record(reader.totals())
                except (sqlite3.Error, OSError) as exc:
                    log.warning("backlog history: %s", exc)
                if self._stop.wait(self.every):
                    return
        finally:
            reader.close()

    def charts(self, limit: int = 360) -> dict[str, Chart]:
        rows = self.samples(limit)
        times = [r["t"] for r in rows]
        rates: list[float] = [0.0]
        for a, b in zip(rows, rows[1:]):
            dt = b["t"] - a["t"]
            rates.append(max(0.0, (b["bytes_processed"] - a["bytes_processed"]) / dt) if dt > 0 else 0.0)
        return {
            "jobs": chart(times, [float(r["queued"] + r["running"]) for r in rows]),
            "bytes": chart(times, [float(r["bytes_waiting"]) for r in rows]),
            "rate": chart(times, rates if rows else []),
        }


def chart(times: list[float], values: list[float], width: int = 600, height: int = 120) -> Chart:
    """Scale a series into an SVG box (time on x, zero at the bottom)."""
    if not values:
        return Chart("", 0.0, None, 0.0, width, height)
    t0, t1 = times[0], times[-1]
    span = max(t1 - t0, 1e-9)
    peak = max(values) or 1.0
    pts = " ".join(f"{(t - t0) / span * width:.1f},{height - v / peak * (height - 4) - 2:.1f}"
                   for t, v in zip(times, values))
    return Chart(pts, max(values), values[-1], t1 - t0, width, height)
