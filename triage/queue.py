"""The device backlog: a persistent job queue in SQLite at ``<state dir>/queue.sqlite``.

Job ids are ``J`` + the row number zero-padded to six digits (``J000042``): short,
typeable, never reused. ``J42``, ``j000042`` and ``42`` are read as the same id.

States: ``queued`` → ``running`` (claimed by the dispatcher) → ``done`` | ``failed`` |
``cancelled``; ``retry`` puts a failed or cancelled job back to ``queued``.

Order of claiming: highest *effective* priority first, then FIFO (the time the job
last became queued, then its id). Ageing: a ``low`` or ``normal`` job rises one
level per ``queue.age-every`` seconds it has waited (``triage.yaml``), up to ``high``;
so low work never starves, yet an aged job never overtakes a ``critical`` one, which
only an examiner sets. ``prioritize`` restarts the ageing clock of a queued job.

Idempotency: submitting the same image paths (resolved, in order) for the same case
and exhibit while an earlier job for them is queued or running returns that job
(``Job.existed`` is True) instead of a second one; a partial unique index enforces it.

Who may run a job: one dispatcher per state directory, proved by its exclusive lock
file (:mod:`triage.dispatcher`). That is the only mechanism: a running job is never
taken back by time (a dispatcher busy restoring thousands of checkpoints must not
lose its own jobs); a dispatcher that just took the lock calls :meth:`Queue.requeue_orphans`,
because every job still ``running`` then belongs to a dispatcher that is gone.

The pieces: :mod:`triage.job` (the Job model), :mod:`triage.queuedb` (schema and
transactions), :mod:`triage.eta` (positions and ETAs); this module the operations.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from triage import config
from triage.eta import positions, record_finished, throughput
from triage.job import (ACTIVE_STATES, AGE_CAP, PRIORITIES, PRIORITY_NAMES, STATES, Job, JobNotFoundError,
                        JobStateError, check_priority, iso, job_id, parse_job_id)
from triage.queuedb import FILENAME, ORDER, SELECT, QueueDB, QueueError, params, row_to_job
from triage.rules.errors import InputError
from triage.rules.home import state_dir
from triage.workers.image import identify

__all__ = ["ACTIVE_STATES", "AGE_CAP", "PRIORITIES", "PRIORITY_NAMES", "STATES", "Job", "JobNotFoundError",
           "JobStateError", "Queue", "QueueError", "check_priority", "iso", "job_id", "parse_job_id"]


class Queue:
    """The job queue in one SQLite file; safe to use from several processes at once."""

    def __init__(self, path: str | Path, *, age_every: float | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        """``age_every``: seconds of waiting per priority level gained (0 = no ageing; default
        ``queue.age-every`` from the config); ``clock``: epoch seconds, injectable for tests."""
        self.path = Path(path)
        self.age_every = float(config.get("queue.age-every") if age_every is None else age_every)
        self.clock = clock or time.time
        self._db = QueueDB(self.path)

    @classmethod
    def at(cls, home: str | Path | None = None, **kwargs: Any) -> Queue:
        """The queue of a state directory (``--home``, ``$TRIAGE_HOME`` or the XDG default)."""
        return cls(state_dir(home) / FILENAME, **kwargs)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _params(self, now: float, **extra: Any) -> dict[str, Any]:
        return params(now, self.age_every, **extra)

    # -- reading --------------------------------------------------------------------

    def _row(self, conn: sqlite3.Connection, now: float, seq: int) -> sqlite3.Row:
        row = conn.execute(f"{SELECT} WHERE seq = :seq", self._params(now, seq=seq)).fetchone()
        if row is None:
            raise JobNotFoundError(f"{job_id(seq)}: no such job in {self.path}")
        return row

    def _job(self, conn: sqlite3.Connection, now: float, seq: int) -> Job:
        return row_to_job(self._row(conn, now, seq))

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
            row = conn.execute(f"{SELECT} WHERE seq = :seq", self._params(now, seq=seq)).fetchone()
            if row is not None:
                return [row]
        rows = conn.execute(f"{SELECT} WHERE case_ref = :case ORDER BY seq", self._params(now, case=text)).fetchall()
        if not rows:
            raise JobNotFoundError(f"{text!r}: no such job or case in {self.path}")
        return rows

    def _annotated(self, conn: sqlite3.Connection, now: float, rows: list[sqlite3.Row]) -> list[Job]:
        """Jobs with their queue position and ETA, computed over the whole queue."""
        order = conn.execute(f"{SELECT} WHERE state = 'queued' {ORDER}", self._params(now)).fetchall()
        running = conn.execute("SELECT seq, bytes_total, bytes_done FROM jobs WHERE state = 'running'").fetchall()
        where = positions(conn, running, order)
        out = []
        for r in rows:
            pos, eta = where.get(r["seq"], (0, None))
            out.append(row_to_job(r, pos or None, None if eta is None else round(eta, 1)))
        return out

    def get(self, job: Job | str) -> Job:
        now = self.clock()
        with self._db.tx(write=False) as conn:
            return self._annotated(conn, now, [self._row(conn, now, self._seq(job))])[0]

    def list(self, case: str | None = None, *, active_only: bool = False) -> list[Job]:
        """Running jobs, then queued ones in claim order, then finished ones, newest first."""
        now = self.clock()
        sql = f"{SELECT} WHERE (:case IS NULL OR case_ref = :case)"
        if active_only:
            sql += " AND state IN ('queued', 'running')"
        sql += (" ORDER BY CASE state WHEN 'running' THEN 0 WHEN 'queued' THEN 1 ELSE 2 END,"
                " CASE WHEN state = 'queued' THEN -eff END, CASE WHEN state = 'queued' THEN ready_at END,"
                " CASE WHEN state NOT IN ('queued', 'running') THEN -COALESCE(finished, 0) END, seq")
        with self._db.tx(write=False) as conn:
            return self._annotated(conn, now, conn.execute(sql, self._params(now, case=case)).fetchall())

    def throughput(self) -> float | None:
        """Measured bytes/s of finished jobs, or None before the first one."""
        with self._db.tx(write=False) as conn:
            return throughput(conn)

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
        with self._db.tx(write=True) as conn:
            row = conn.execute(f"{SELECT} WHERE image_key = :key AND case_ref = :case AND exhibit = :ex "
                               "AND state IN ('queued', 'running')",
                               self._params(now, key=key, case=case, ex=exhibit)).fetchone()
            if row is not None:
                return row_to_job(row, existed=True)
            cur = conn.execute(
                "INSERT INTO jobs (case_ref, exhibit, prio, examiner, note, images, image_formats, image_sizes,"
                " image_key, state, submitted, ready_at, age_from, bytes_total)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (case, exhibit, prio, examiner, note, json.dumps(paths), json.dumps([r.format for r in refs]),
                 json.dumps([r.size for r in refs]), key, now, now, now, sum(r.size for r in refs)))
            return self._job(conn, now, cur.lastrowid)

    # -- the dispatcher's side ------------------------------------------------------------

    def requeue_orphans(self) -> list[Job]:
        """Every running job goes back to the queue, keeping its place, results dir and progress
        (or straight to cancelled when a cancel was requested meanwhile).

        Only for a dispatcher that just took the state directory's dispatcher lock: holding
        it proves no other dispatcher is alive, so every running job is an orphan of a
        stopped or killed one.
        """
        now = self.clock()
        with self._db.tx(write=True) as conn:
            rows = conn.execute("SELECT seq, cancel_requested FROM jobs WHERE state = 'running'").fetchall()
            for r in rows:
                if r["cancel_requested"]:
                    conn.execute("UPDATE jobs SET state = 'cancelled', finished = ?, dispatcher = NULL, "
                                 "heartbeat = NULL WHERE seq = ?", (now, r["seq"]))
                else:  # keeps ready_at (its place in line), results_dir and progress
                    conn.execute("UPDATE jobs SET state = 'queued', started = NULL, attempts = attempts + 1, "
                                 "dispatcher = NULL, heartbeat = NULL WHERE seq = ?", (r["seq"],))
            return [self._job(conn, now, r["seq"]) for r in rows]

    def claim_next(self, owner: str) -> Job | None:
        """Take the next queued job for ``owner``, or None. Running jobs are never taken back here."""
        if not owner:
            raise ValueError("claim_next needs an owner name")
        now = self.clock()
        with self._db.tx(write=True) as conn:
            row = conn.execute(f"{SELECT} WHERE state = 'queued' {ORDER} LIMIT 1", self._params(now)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE jobs SET state = 'running', started = ?, dispatcher = ?, heartbeat = ? "
                         "WHERE seq = ?", (now, owner, now, row["seq"]))
            return self._job(conn, now, row["seq"])

    def _held(self, conn: sqlite3.Connection, now: float, job: Job | str, owner: str | None) -> sqlite3.Row:
        row = self._row(conn, now, self._seq(job))
        if owner is None and isinstance(job, Job):
            owner = job.dispatcher
        if row["state"] != "running":
            raise JobStateError(f"{job_id(row['seq'])}: is {row['state']}, not running")
        if owner is not None and row["dispatcher"] != owner:
            raise JobStateError(f"{job_id(row['seq'])}: no longer held by {owner} (requeued by another dispatcher)")
        return row

    def update_progress(self, job: Job | str, *, bytes_done: int | None = None, bytes_total: int | None = None,
                        files_done: int | None = None, known_bad_hits: int | None = None,
                        results_dir: str | Path | None = None, owner: str | None = None) -> Job:
        """Record progress; the returned Job carries ``cancel_requested`` and the current
        ``priority`` for the dispatcher to act on."""
        now = self.clock()
        with self._db.tx(write=True) as conn:
            row = self._held(conn, now, job, owner)
            conn.execute(
                "UPDATE jobs SET bytes_done = COALESCE(?, bytes_done), bytes_total = COALESCE(?, bytes_total), "
                "files_done = COALESCE(?, files_done), known_bad_hits = COALESCE(?, known_bad_hits), "
                "results_dir = COALESCE(?, results_dir), heartbeat = ? WHERE seq = ?",
                (bytes_done, bytes_total, files_done, known_bad_hits,
                 None if results_dir is None else str(results_dir), now, row["seq"]))
            return self._job(conn, now, row["seq"])

    def finish(self, job: Job | str, results_dir: str | Path, summary: dict[str, Any], *,
               known_bad_hits: int | None = None, owner: str | None = None) -> Job:
        """running → done; also feeds the measured throughput."""
        now = self.clock()
        hits = known_bad_hits if known_bad_hits is not None else summary.get("known_bad_hits")
        with self._db.tx(write=True) as conn:
            row = self._held(conn, now, job, owner)
            conn.execute("UPDATE jobs SET state = 'done', finished = ?, results_dir = ?, summary = ?, "
                         "bytes_done = bytes_total, known_bad_hits = COALESCE(?, known_bad_hits), "
                         "dispatcher = NULL, heartbeat = NULL WHERE seq = ?",
                         (now, str(results_dir), json.dumps(summary, sort_keys=True, default=str), hits, row["seq"]))
            if row["started"] is not None:
                record_finished(conn, row["bytes_total"], now - row["started"])
            return self._job(conn, now, row["seq"])

    def fail(self, job: Job | str, reason: str, *, owner: str | None = None) -> Job:
        """running → failed, with a one-line reason for the examiner."""
        return self._end(job, "failed", reason, owner)

    def mark_cancelled(self, job: Job | str, *, owner: str | None = None) -> Job:
        """running → cancelled: the dispatcher stopped a job after cancel_requested."""
        return self._end(job, "cancelled", None, owner)

    def _end(self, job: Job | str, state: str, reason: str | None, owner: str | None) -> Job:
        now = self.clock()
        with self._db.tx(write=True) as conn:
            row = self._held(conn, now, job, owner)
            conn.execute("UPDATE jobs SET state = ?, finished = ?, failure = ?, dispatcher = NULL, "
                         "heartbeat = NULL WHERE seq = ?", (state, now, reason, row["seq"]))
            return self._job(conn, now, row["seq"])

    # -- the examiner's side ----------------------------------------------------------------

    def cancel(self, target: Job | str) -> list[Job]:
        """A job or every active job of a case: queued → cancelled now; running → cancel_requested."""
        now = self.clock()
        with self._db.tx(write=True) as conn:
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
            return [self._job(conn, now, r["seq"]) for r in active]

    def retry(self, job: Job | str) -> Job:
        """failed/cancelled → queued at the back of its priority, attempts + 1."""
        now = self.clock()
        with self._db.tx(write=True) as conn:
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
        """Set the priority of a job or of a case's queued and running jobs (a running job's
        dispatcher sees the new priority at its next progress report)."""
        prio = check_priority(priority)
        now = self.clock()
        with self._db.tx(write=True) as conn:
            rows = [r for r in self._target(conn, now, target) if r["state"] in ACTIVE_STATES]
            if not rows:
                raise JobStateError(f"{target if isinstance(target, str) else target.id}: "
                                    "no queued or running jobs to prioritize")
            for r in rows:
                conn.execute("UPDATE jobs SET prio = ?, age_from = ? WHERE seq = ?", (prio, now, r["seq"]))
            # a counter readers can watch instead of re-reading every row (the dashboard's order cache)
            conn.execute("INSERT INTO meta (key, value) VALUES ('priority_generation', 1) "
                         "ON CONFLICT(key) DO UPDATE SET value = value + 1")
            return self._annotated(conn, now, [self._row(conn, now, r["seq"]) for r in rows])
