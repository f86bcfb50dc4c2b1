"""The device backlog: a persistent job queue in SQLite at ``<state dir>/queue.sqlite``.

Every method is one short transaction (WAL mode, a busy timeout, ``BEGIN IMMEDIATE``
for writes), so CLI processes and a dispatcher can share the file safely.

Job ids are ``J`` + the row number zero-padded to six digits (``J000042``): short,
typeable, never reused. ``J42``, ``j000042`` and ``42`` are read as the same id.

States: ``queued`` → ``running`` (claimed under a lease) → ``done`` | ``failed`` |
``cancelled``; ``retry`` puts a failed or cancelled job back to ``queued``.

Order of claiming: highest *effective* priority first, then FIFO (the time the job
last became queued, then its id). Ageing: a ``low`` or ``normal`` job rises one
level per ``age_every`` seconds it has waited (default 30 min), up to ``high``; so
low work never starves, yet an aged job never overtakes a ``critical`` one, which
only an examiner sets. ``prioritize`` restarts the ageing clock of a queued job.

Idempotency: submitting the same image paths (resolved, in order) for the same case
and exhibit while an earlier job for them is queued or running returns that job
(``Job.existed`` is True) instead of a second one; a partial unique index enforces it.

Leases: ``claim_next(owner, lease_seconds)`` records the dispatcher and a heartbeat;
a running job whose heartbeat is older than its lease is reclaimed (back to queued,
``attempts`` + 1, results dir and progress kept so a dispatcher can resume; or
straight to cancelled when a cancel was requested meanwhile).

ETA: finished jobs feed a stored throughput (bytes/s, exponentially weighted); a job's
ETA is the bytes left in running jobs, in queued jobs ahead of it and in itself,
divided by that throughput. It assumes one job at a time, so with several jobs in
parallel it is an upper bound.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from triage.rules.errors import InputError, TriageError
from triage.rules.home import state_dir
from triage.workers.image import identify

#: priority names → Dask task priority numbers (higher runs first)
PRIORITIES: dict[str, int] = {"low": 0, "normal": 1, "high": 2, "critical": 3}
PRIORITY_NAMES: dict[int, str] = {v: k for k, v in PRIORITIES.items()}
STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
AGE_EVERY_SECONDS = 1800.0  # one level per 30 min of waiting
AGE_CAP = "high"            # ageing never makes a job critical
LEASE_SECONDS = 120.0
THROUGHPUT_WEIGHT = 0.3     # weight of the newest finished job in the throughput average
BUSY_TIMEOUT_MS = 30_000
SCHEMA_VERSION = 1
FILENAME = "queue.sqlite"

_ID = re.compile(r"^[Jj]?0*(\d+)$")

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
        dispatcher TEXT, heartbeat REAL, lease_seconds REAL,  -- the lease of a running job
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        priority_generation INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active ON jobs(image_key, case_ref, exhibit) "
    "WHERE state IN ('queued', 'running')",
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state)",
    "CREATE INDEX IF NOT EXISTS jobs_case ON jobs(case_ref)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)",
]

# effective priority of a row at :now (named parameters :now, :cap, :step)
_EFFECTIVE = ("CASE WHEN state != 'queued' OR prio >= :cap THEN prio "
              "ELSE MIN(:cap, prio + MAX(0, CAST((:now - age_from) / :step AS INTEGER))) END")
_SELECT = f"SELECT *, {_EFFECTIVE} AS eff FROM jobs"
_ORDER = "ORDER BY eff DESC, ready_at, seq"


class QueueError(TriageError):
    """The queue file cannot be used (locked too long, disk full, read-only); exit code 1."""


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


def _utc(ts: float | None) -> dt.datetime | None:
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
    known_bad_hits: int
    results_dir: str | None
    dispatcher: str | None
    heartbeat: dt.datetime | None
    lease_expires: dt.datetime | None
    cancel_requested: bool
    priority_generation: int
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
    def dask_priority(self) -> int:
        return PRIORITIES[self.priority]

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


class Queue:
    """The job queue in one SQLite file; safe to use from several processes at once."""

    def __init__(self, path: str | Path, *, age_every: float | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        """``age_every``: seconds of waiting per priority level gained (0 = no ageing);
        ``clock``: epoch seconds, injectable for tests."""
        self.path = Path(path)
        self.age_every = AGE_EVERY_SECONDS if age_every is None else float(age_every)
        self.clock = clock or time.time
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    @classmethod
    def at(cls, home: str | Path | None = None, **kwargs: Any) -> Queue:
        """The queue of a state directory (``--home``, ``$TRIAGE_HOME`` or the XDG default)."""
        return cls(state_dir(home) / FILENAME, **kwargs)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection and transactions ------------------------------------------------

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
    def _tx(self, write: bool) -> Iterator[sqlite3.Connection]:
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

    def _params(self, now: float, **extra: Any) -> dict[str, Any]:
        step = self.age_every if self.age_every > 0 else 1e300
        return {"now": now, "cap": PRIORITIES[AGE_CAP], "step": step, **extra}

    # -- reading --------------------------------------------------------------------

    def _job(self, row: sqlite3.Row, position: int | None = None, eta: float | None = None,
             existed: bool = False) -> Job:
        hb, lease = row["heartbeat"], row["lease_seconds"]
        return Job(
            id=job_id(row["seq"]), case=row["case_ref"], exhibit=row["exhibit"],
            priority=PRIORITY_NAMES[row["prio"]], effective_priority=PRIORITY_NAMES[row["eff"]],
            state=row["state"], images=tuple(json.loads(row["images"])),
            image_formats=tuple(json.loads(row["image_formats"])),
            image_sizes=tuple(json.loads(row["image_sizes"])), examiner=row["examiner"], note=row["note"],
            submitted=_utc(row["submitted"]), started=_utc(row["started"]), finished=_utc(row["finished"]),
            attempts=row["attempts"], failure=row["failure"], bytes_done=row["bytes_done"],
            bytes_total=row["bytes_total"], files_done=row["files_done"], known_bad_hits=row["known_bad_hits"],
            results_dir=row["results_dir"], dispatcher=row["dispatcher"], heartbeat=_utc(hb),
            lease_expires=_utc(hb + lease) if hb is not None and lease is not None else None,
            cancel_requested=bool(row["cancel_requested"]), priority_generation=row["priority_generation"],
            position=position, eta_seconds=eta,
            summary=json.loads(row["summary"]) if row["summary"] else None, existed=existed,
        )

    def _row(self, conn: sqlite3.Connection, now: float, seq: int) -> sqlite3.Row:
        row = conn.execute(f"{_SELECT} WHERE seq = :seq", self._params(now, seq=seq)).fetchone()
        if row is None:
            raise JobNotFoundError(f"{job_id(seq)}: no such job in {self.path}")
        return row

    def _seq(self, job: Job | str) -> int:
        text = job.id if isinstance(job, Job) else str(job)
        seq = parse_job_id(text)
        if seq is None:
            raise JobNotFoundError(f"{text!r}: not a job id (like J000042)")
        return seq

    def _target(self, conn: sqlite3.Connection, now: float, target: Job | str) -> list[sqlite3.Row]:
        """A job id, or else a case: the rows it names (a job id wins over a case of that name)."""
        text = target.id if isinstance(target, Job) else str(target)
        seq = parse_job_id(text)
        if seq is not None:
            row = conn.execute(f"{_SELECT} WHERE seq = :seq", self._params(now, seq=seq)).fetchone()
            if row is not None:
                return [row]
        rows = conn.execute(f"{_SELECT} WHERE case_ref = :case ORDER BY seq", self._params(now, case=text)).fetchall()
        if not rows:
            raise JobNotFoundError(f"{text!r}: no such job or case in {self.path}")
        return rows

    def _throughput(self, conn: sqlite3.Connection) -> float | None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'throughput_bps'").fetchone()
        return float(row[0]) if row is not None else None

    def _annotated(self, conn: sqlite3.Connection, now: float, rows: list[sqlite3.Row]) -> list[Job]:
        """Jobs with their queue position and ETA, computed over the whole queue."""
        order = conn.execute(f"{_SELECT} WHERE state = 'queued' {_ORDER}", self._params(now)).fetchall()
        running = conn.execute("SELECT seq, bytes_total, bytes_done FROM jobs WHERE state = 'running'").fetchall()
        bps = self._throughput(conn)
        ahead = sum(max(0, r["bytes_total"] - r["bytes_done"]) for r in running)
        where: dict[int, tuple[int, float | None]] = {
            r["seq"]: (0, max(0, r["bytes_total"] - r["bytes_done"]) / bps if bps else None) for r in running}
        for pos, r in enumerate(order, 1):
            ahead += max(0, r["bytes_total"] - r["bytes_done"])
            where[r["seq"]] = (pos, ahead / bps if bps else None)
        out = []
        for r in rows:
            pos, eta = where.get(r["seq"], (0, None))
            out.append(self._job(r, pos or None, None if eta is None else round(eta, 1)))
        return out

    def get(self, job: Job | str) -> Job:
        now = self.clock()
        with self._tx(write=False) as conn:
            return self._annotated(conn, now, [self._row(conn, now, self._seq(job))])[0]

    def list(self, case: str | None = None, *, active_only: bool = False) -> list[Job]:
        """Running jobs, then queued ones in claim order, then finished ones, newest first."""
        now = self.clock()
        sql = f"{_SELECT} WHERE (:case IS NULL OR case_ref = :case)"
        if active_only:
            sql += " AND state IN ('queued', 'running')"
        sql += (" ORDER BY CASE state WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END,"
                " CASE WHEN state = 'queued' THEN -eff END, CASE WHEN state = 'queued' THEN ready_at END,"
                " CASE WHEN state NOT IN ('queued', 'running') THEN -COALESCE(finished, 0) END, seq")
        with self._tx(write=False) as conn:
            return self._annotated(conn, now, conn.execute(sql, self._params(now, case=case)).fetchall())

    def throughput(self) -> float | None:
        """Measured bytes/s of finished jobs, or None before the first one."""
        with self._tx(write=False) as conn:
            return self._throughput(conn)

    def priority_generation(self) -> int:
        """A counter bumped by every prioritize(); a dispatcher polls it to re-rank running work."""
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'priority_generation'").fetchone()
            return int(row[0]) if row is not None else 0

    # -- submitting ---------------------------------------------------------------------

    def submit(self, images: Sequence[str | Path], case: str, exhibit: str, priority: str = "normal",
               examiner: str | None = None, note: str | None = None) -> Job:
        """Queue the images of one exhibit; each is validated with identify() first."""
        prio = check_priority(priority)
        case, exhibit = (case or "").strip(), (exhibit or "").strip()
        if not case or not exhibit:
            raise InputError("a job needs a non-empty --case and --exhibit")
        if not images:
            raise InputError("a job needs at least one image")
        refs = [identify(p) for p in images]
        paths = [str(Path(p).expanduser().resolve()) for p in images]
        key = json.dumps(paths)
        now = self.clock()
        with self._tx(write=True) as conn:
            row = conn.execute(f"{_SELECT} WHERE image_key = :key AND case_ref = :case AND exhibit = :ex "
                               "AND state IN ('queued', 'running')",
                               self._params(now, key=key, case=case, ex=exhibit)).fetchone()
            if row is not None:
                return self._job(row, existed=True)
            cur = conn.execute(
                "INSERT INTO jobs (case_ref, exhibit, prio, examiner, note, images, image_formats, image_sizes,"
                " image_key, state, submitted, ready_at, age_from, bytes_total)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (case, exhibit, prio, examiner, note, json.dumps(paths), json.dumps([r.format for r in refs]),
                 json.dumps([r.size for r in refs]), key, now, now, now, sum(r.size for r in refs)))
            return self._job(self._row(conn, now, cur.lastrowid))

    # -- the dispatcher's side ------------------------------------------------------------

    def _reclaim(self, conn: sqlite3.Connection, now: float, all_running: bool = False) -> list[int]:
        rows = conn.execute("SELECT seq, cancel_requested FROM jobs WHERE state = 'running' "
                            "AND (? OR heartbeat + lease_seconds < ?)", (all_running, now)).fetchall()
        for r in rows:
            if r["cancel_requested"]:
                conn.execute("UPDATE jobs SET state = 'cancelled', finished = ?, dispatcher = NULL, "
                             "heartbeat = NULL, lease_seconds = NULL WHERE seq = ?", (now, r["seq"]))
            else:  # keeps ready_at (its place in line), results_dir and progress
                conn.execute("UPDATE jobs SET state = 'queued', started = NULL, attempts = attempts + 1, "
                             "dispatcher = NULL, heartbeat = NULL, lease_seconds = NULL WHERE seq = ?",
                             (r["seq"],))
        return [r["seq"] for r in rows]

    def reclaim_expired(self) -> list[Job]:
        """Running jobs whose lease expired (their dispatcher died) become claimable again."""
        now = self.clock()
        with self._tx(write=True) as conn:
            return [self._job(self._row(conn, now, s)) for s in self._reclaim(conn, now)]

    def requeue_orphans(self) -> list[Job]:
        """Every running job goes back to the queue, keeping its place, results dir and progress.

        Only for a dispatcher that just took the state directory's dispatcher lock: holding
        it proves no other dispatcher is alive, so every running job is an orphan of a
        stopped or killed one, and waiting for its lease to expire would only lose time.
        """
        now = self.clock()
        with self._tx(write=True) as conn:
            return [self._job(self._row(conn, now, s)) for s in self._reclaim(conn, now, all_running=True)]

    def claim_next(self, owner: str, lease_seconds: float | None = None) -> Job | None:
        """Take the next job for ``owner`` (reclaiming expired leases first), or None."""
        if not owner:
            raise ValueError("claim_next needs an owner name")
        now = self.clock()
        lease = LEASE_SECONDS if lease_seconds is None else float(lease_seconds)
        with self._tx(write=True) as conn:
            self._reclaim(conn, now)
            row = conn.execute(f"{_SELECT} WHERE state = 'queued' {_ORDER} LIMIT 1", self._params(now)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE jobs SET state = 'running', started = ?, dispatcher = ?, heartbeat = ?, "
                         "lease_seconds = ? WHERE seq = ?", (now, owner, now, lease, row["seq"]))
            return self._job(self._row(conn, now, row["seq"]))

    def heartbeat(self, owner: str, lease_seconds: float | None = None) -> list[str]:
        """Renew ``owner``'s leases; returns the ids it still holds (a missing one was reclaimed)."""
        now = self.clock()
        with self._tx(write=True) as conn:
            conn.execute("UPDATE jobs SET heartbeat = ?, lease_seconds = COALESCE(?, lease_seconds) "
                         "WHERE state = 'running' AND dispatcher = ?", (now, lease_seconds, owner))
            rows = conn.execute("SELECT seq FROM jobs WHERE state = 'running' AND dispatcher = ? ORDER BY seq",
                                (owner,)).fetchall()
            return [job_id(r["seq"]) for r in rows]

    def _held(self, conn: sqlite3.Connection, now: float, job: Job | str, owner: str | None) -> sqlite3.Row:
        row = self._row(conn, now, self._seq(job))
        if owner is None and isinstance(job, Job):
            owner = job.dispatcher
        if row["state"] != "running":
            raise JobStateError(f"{job_id(row['seq'])}: is {row['state']}, not running")
        if owner is not None and row["dispatcher"] != owner:
            raise JobStateError(f"{job_id(row['seq'])}: no longer held by {owner} (lease expired, reclaimed)")
        return row

    def update_progress(self, job: Job | str, *, bytes_done: int | None = None, bytes_total: int | None = None,
                        files_done: int | None = None, known_bad_hits: int | None = None,
                        results_dir: str | Path | None = None, owner: str | None = None) -> Job:
        """Record progress (and renew the lease); the returned Job carries cancel_requested
        and priority_generation for the dispatcher to act on."""
        now = self.clock()
        with self._tx(write=True) as conn:
            row = self._held(conn, now, job, owner)
            conn.execute(
                "UPDATE jobs SET bytes_done = COALESCE(?, bytes_done), bytes_total = COALESCE(?, bytes_total), "
                "files_done = COALESCE(?, files_done), known_bad_hits = COALESCE(?, known_bad_hits), "
                "results_dir = COALESCE(?, results_dir), heartbeat = ? WHERE seq = ?",
                (bytes_done, bytes_total, files_done, known_bad_hits,
                 None if results_dir is None else str(results_dir), now, row["seq"]))
            return self._job(self._row(conn, now, row["seq"]))

    def finish(self, job: Job | str, results_dir: str | Path, summary: dict[str, Any], *,
               known_bad_hits: int | None = None, owner: str | None = None) -> Job:
        """running → done; also feeds the measured throughput."""
        now = self.clock()
        hits = known_bad_hits if known_bad_hits is not None else summary.get("known_bad_hits")
        with self._tx(write=True) as conn:
            row = self._held(conn, now, job, owner)
            conn.execute("UPDATE jobs SET state = 'done', finished = ?, results_dir = ?, summary = ?, "
                         "bytes_done = bytes_total, known_bad_hits = COALESCE(?, known_bad_hits), "
                         "dispatcher = NULL, heartbeat = NULL, lease_seconds = NULL WHERE seq = ?",
                         (now, str(results_dir), json.dumps(summary, sort_keys=True, default=str), hits, row["seq"]))
            seconds = now - row["started"] if row["started"] is not None else 0
            if seconds > 0 and row["bytes_total"] > 0:
                rate = row["bytes_total"] / seconds
                old = self._throughput(conn)
                new = rate if old is None else THROUGHPUT_WEIGHT * rate + (1 - THROUGHPUT_WEIGHT) * old
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('throughput_bps', ?)", (new,))
            return self._job(self._row(conn, now, row["seq"]))

    def fail(self, job: Job | str, reason: str, *, owner: str | None = None) -> Job:
        """running → failed, with a one-line reason for the examiner."""
        return self._end(job, "failed", reason, owner)

    def mark_cancelled(self, job: Job | str, *, owner: str | None = None) -> Job:
        """running → cancelled: the dispatcher stopped a job after cancel_requested."""
        return self._end(job, "cancelled", None, owner)

    def _end(self, job: Job | str, state: str, reason: str | None, owner: str | None) -> Job:
        now = self.clock()
        with self._tx(write=True) as conn:
            row = self._held(conn, now, job, owner)
            conn.execute("UPDATE jobs SET state = ?, finished = ?, failure = ?, dispatcher = NULL, "
                         "heartbeat = NULL, lease_seconds = NULL WHERE seq = ?", (state, now, reason, row["seq"]))
            return self._job(self._row(conn, now, row["seq"]))

    # -- the examiner's side ----------------------------------------------------------------

    def cancel(self, target: Job | str) -> list[Job]:
        """A job or every active job of a case: queued → cancelled now; running → cancel_requested."""
        now = self.clock()
        with self._tx(write=True) as conn:
            rows = self._target(conn, now, target)
            active = [r for r in rows if r["state"] in ACTIVE_STATES]
            if not active:
                if len(rows) == 1:
                    raise JobStateError(f"{job_id(rows[0]['seq'])}: is {rows[0]['state']}; nothing to cancel")
                raise JobStateError(f"case {rows[0]['case_ref']!r}: no queued or running jobs; nothing to cancel")
            for r in active:
                if r["state"] == "queued":
                    conn.execute("UPDATE jobs SET state = 'cancelled', finished = ? WHERE seq = ?", (now, r["seq"]))
                else:
                    conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE seq = ?", (r["seq"],))
            return [self._job(self._row(conn, now, r["seq"])) for r in active]

    def retry(self, job: Job | str) -> Job:
        """failed/cancelled → queued at the back of its priority, attempts + 1."""
        now = self.clock()
        with self._tx(write=True) as conn:
            row = self._row(conn, now, self._seq(job))
            if row["state"] not in ("failed", "cancelled"):
                raise JobStateError(f"{job_id(row['seq'])}: is {row['state']}; only failed or cancelled jobs "
                                    "can be retried")
            other = conn.execute("SELECT seq FROM jobs WHERE image_key = ? AND case_ref = ? AND exhibit = ? "
                                 "AND state IN ('queued', 'running')",
                                 (row["image_key"], row["case_ref"], row["exhibit"])).fetchone()
            if other is not None:
                raise JobStateError(f"{job_id(row['seq'])}: the same images are already queued as "
                                    f"{job_id(other['seq'])}")
            conn.execute("UPDATE jobs SET state = 'queued', attempts = attempts + 1, failure = NULL, "
                         "cancel_requested = 0, started = NULL, finished = NULL, ready_at = ?, age_from = ? "
                         "WHERE seq = ?", (now, now, row["seq"]))
            return self._annotated(conn, now, [self._row(conn, now, row["seq"])])[0]

    def prioritize(self, target: Job | str, priority: str) -> list[Job]:
        """Set the priority of a job or of a case's queued and running jobs."""
        prio = check_priority(priority)
        now = self.clock()
        with self._tx(write=True) as conn:
            rows = [r for r in self._target(conn, now, target) if r["state"] in ACTIVE_STATES]
            if not rows:
                raise JobStateError(f"{target if isinstance(target, str) else target.id}: "
                                    "no queued or running jobs to prioritize")
            for r in rows:
                conn.execute("UPDATE jobs SET prio = ?, age_from = ?, priority_generation = priority_generation + 1"
                             " WHERE seq = ?", (prio, now, r["seq"]))
            conn.execute("INSERT INTO meta (key, value) VALUES ('priority_generation', 1) "
                         "ON CONFLICT(key) DO UPDATE SET value = value + 1")
            return self._annotated(conn, now, [self._row(conn, now, r["seq"]) for r in rows])
