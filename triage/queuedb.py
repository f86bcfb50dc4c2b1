"""The queue's SQLite file: schema, migrations, connection and transactions.

Every operation is one short transaction (WAL mode, a busy timeout, ``BEGIN
IMMEDIATE`` for writes), so CLI processes, a dispatcher and a dashboard can share
the file safely. ``PRAGMA user_version`` holds the schema version: a file from a
newer version is refused, an older one is brought up to date in one transaction
(every statement of the schema is idempotent: version 1 → 2 adds three indexes).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from triage.job import AGE_CAP, PRIORITIES, PRIORITY_NAMES, Job, job_id, utc
from triage.rules.errors import InputError, TriageError

BUSY_TIMEOUT_MS = 30_000
SCHEMA_VERSION = 2  # 2: the indexes the dashboard finds changed rows by (triage/dashboard/order.py)
FILENAME = "queue.sqlite"

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the id is 'J%06d' % seq
        case_ref TEXT NOT NULL, exhibit TEXT NOT NULL,
        prio INTEGER NOT NULL,                  -- PRIORITIES value
        examiner TEXT, note TEXT,
        images TEXT NOT NULL,                   -- JSON list of absolute paths
        image_formats TEXT NOT NULL,            -- JSON list, parallel to images
        image_sizes TEXT NOT NULL,              -- JSON list of media sizes in bytes
        image_key TEXT NOT NULL,                -- idempotency key: JSON of the resolved paths
        state TEXT NOT NULL,
        submitted REAL NOT NULL,                -- epoch seconds, UTC
        ready_at REAL NOT NULL,                 -- FIFO key: when it last became queued
        age_from REAL NOT NULL,                 -- ageing baseline (reset by prioritize)
        started REAL, finished REAL,
        attempts INTEGER NOT NULL DEFAULT 1,
        failure TEXT,
        bytes_done INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER NOT NULL,
        files_done INTEGER NOT NULL DEFAULT 0, known_bad_hits INTEGER NOT NULL DEFAULT 0,
        results_dir TEXT, summary TEXT,
        dispatcher TEXT, heartbeat REAL,        -- who runs it, and its last progress report
        lease_seconds REAL,                     -- unused (leases gave way to the dispatcher lock); kept for old files
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        priority_generation INTEGER NOT NULL DEFAULT 0  -- unused column; kept so files of either version open
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active ON jobs(image_key, case_ref, exhibit) "
    "WHERE state IN ('queued', 'running')",
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state)",
    "CREATE INDEX IF NOT EXISTS jobs_case ON jobs(case_ref)",
    # since 2: every change of a job's place in line sets one of these to the writer's clock (or adds a seq),
    # so a reader finds the rows that moved since its last look with range reads instead of a full scan
    "CREATE INDEX IF NOT EXISTS jobs_age_from ON jobs(age_from)",
    "CREATE INDEX IF NOT EXISTS jobs_ready_at ON jobs(ready_at)",
    "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)",
]

# effective priority of a row at :now (named parameters :now, :cap, :step)
EFFECTIVE = ("CASE WHEN state != 'queued' OR prio >= :cap THEN prio "
             "ELSE MIN(:cap, prio + MAX(0, CAST((:now - age_from) / :step AS INTEGER))) END")
SELECT = f"SELECT *, {EFFECTIVE} AS eff FROM jobs"
ORDER = "ORDER BY eff DESC, ready_at, seq"


class QueueError(TriageError):
    """The queue file cannot be used (locked too long, disk full, read-only); exit code 1."""


class QueueDB:
    """One connection to the queue file, shared by the threads of a process under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise InputError(f"{self.path}: cannot open the job queue: {exc}") from exc
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        for attempt in range(50):  # a brand-new file: another process may be switching it to WAL
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.05)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            raise InputError(f"{self.path}: written by a newer evidence-triage (schema {version})")
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        self._conn = conn
        return conn

    @contextmanager
    def tx(self, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise QueueError(f"{self.path}: job queue unavailable: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise QueueError(f"{self.path}: job queue: {exc}") from exc
                raise


def params(now: float, age_every: float, **extra: Any) -> dict[str, Any]:
    """Named parameters of :data:`EFFECTIVE` (``age_every`` 0 = no ageing)."""
    step = age_every if age_every > 0 else 1e300
    return {"now": now, "cap": PRIORITIES[AGE_CAP], "step": step, **extra}


def row_to_job(row: sqlite3.Row, position: int | None = None, eta: float | None = None,
               existed: bool = False) -> Job:
    return Job(
        id=job_id(row["seq"]), case=row["case_ref"], exhibit=row["exhibit"],
        priority=PRIORITY_NAMES[row["prio"]], effective_priority=PRIORITY_NAMES[row["eff"]],
        state=row["state"], images=tuple(json.loads(row["images"])),
        image_formats=tuple(json.loads(row["image_formats"])),
        image_sizes=tuple(json.loads(row["image_sizes"])), examiner=row["examiner"], note=row["note"],
        submitted=utc(row["submitted"]), started=utc(row["started"]), finished=utc(row["finished"]),
        attempts=row["attempts"], failure=row["failure"], bytes_done=row["bytes_done"],
        bytes_total=row["bytes_total"], files_done=row["files_done"], known_bad_hits=row["known_bad_hits"],
        results_dir=row["results_dir"], dispatcher=row["dispatcher"], heartbeat=utc(row["heartbeat"]),
        cancel_requested=bool(row["cancel_requested"]), position=position, eta_seconds=eta,
        summary=json.loads(row["summary"]) if row["summary"] else None, existed=existed,
    )
