"""Read-only views of the job queue for the dashboard: one page of 10,000 jobs in milliseconds.

``Queue.list()`` builds a ``Job`` (JSON parsing, datetimes) for every row and works out
positions in Python: right for ``triage status``, too slow to answer a browser refreshing
every second over a backlog of ten thousand devices. Here the order of every job (a few
narrow columns) is kept between polls and patched from the few rows that changed (see
:mod:`triage.dashboard.order`); a page then reads just its own rows. The connection is opened
``mode=ro``: the dashboard can never change the queue by reading it, and in WAL mode it
never blocks the dispatcher's writes.

This module and :mod:`triage.dashboard.order` are the ones that know the queue's table. Its order and ETA follow
``triage/queue.py`` (effective priority with ageing capped at ``AGE_CAP``, then FIFO by
``ready_at``, then id; ETA = bytes of running jobs and of queued ones up to this one,
over the measured throughput); ``tests/dashboard/test_reads.py`` checks them against
``Queue.list()`` so a change there shows here.
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

from triage import config
from triage.dashboard.model import Filters, Page, Row, Totals
from triage.dashboard.order import EFF, MAX_AGE, Order
from triage.queue import AGE_CAP, FILENAME, PRIORITIES, PRIORITY_NAMES, job_id, parse_job_id


#: the row columns a page shows (not the image lists: a page never needs them)
_COLUMNS = ("seq, case_ref, exhibit, prio, examiner, state, submitted, started, finished, attempts, failure, "
            "bytes_done, bytes_total, files_done, known_bad_hits, results_dir, summary, cancel_requested")


class QueueReader:
    """Read-only access to ``<state dir>/queue.sqlite``; a missing file is an empty queue."""

    def __init__(self, home: Path, *, age_every: float | None = None) -> None:
        self.path = Path(home) / FILENAME
        self.age_every = float(config.get("queue.age-every") if age_every is None else age_every)  # as the queue ages
        self._conn: sqlite3.Connection | None = None
        self._snap: Order | None = None
        self._lock = threading.RLock()  # one connection, shared by the server's worker threads

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if not self.path.exists():
            return None
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=5,
                               isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        # names typed at a terminal may hold anything: never fail a page on undecodable bytes
        conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        conn.execute("PRAGMA query_only=1")
        if conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'jobs'").fetchone()[0] == 0:
            conn.close()
            return None
        self._conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _params(self, now: float, **extra: Any) -> dict[str, Any]:
        step = self.age_every if self.age_every > 0 else 1e300
        return {"now": now, "cap": PRIORITIES[AGE_CAP], "step": step, **extra}

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection | None]:
        """One snapshot of the database for a whole answer (a read transaction)."""
        with self._lock:
            conn = self._connect()
            if conn is None:
                yield None
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def _signature(self, conn: sqlite3.Connection) -> tuple:
        top = conn.execute("SELECT MAX(seq) FROM jobs").fetchone()[0]
        states = tuple(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state").fetchall())
        running = conn.execute("SELECT group_concat(seq) FROM jobs WHERE state = 'running'").fetchone()[0]
        gen = conn.execute("SELECT value FROM meta WHERE key = 'priority_generation'").fetchone()
        return (top, tuple(tuple(r) for r in states), running, gen[0] if gen else 0)

    def _snapshot(self, conn: sqlite3.Connection, now: float) -> Order:
        """The order of every job: kept while nothing moved, patched from the rows that changed
        (claims, finishes, re-prioritisations: :mod:`triage.dashboard.order`), else built again."""
        sig = self._signature(conn)
        snap = self._snap
        if snap is not None and snap.signature == sig and now < snap.valid_until:
            return snap
        params = self._params(now)
        if snap is not None and now - snap.built < MAX_AGE and snap.patch(conn, sig, now, params, self.age_every):
            return snap
        self._snap = Order.build(conn, sig, now, params, self.age_every)
        return self._snap

    def change_mark(self, now: float | None = None) -> tuple | None:
        """Changes whenever what a page shows may have changed: another connection committed to the
        queue (``PRAGMA data_version``) or a job's ageing step came due. Cheap: no table is read."""
        now = time.time() if now is None else now
        with self._lock:
            conn = self._connect()
            if conn is None:
                return None
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            due = self._snap is None or now >= self._snap.valid_until
            return (version, due, id(self._snap))

    def throughput(self) -> float | None:
        with self._read() as conn:
            return None if conn is None else self._throughput(conn)

    @staticmethod
    def _throughput(conn: sqlite3.Connection) -> float | None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'throughput_bps'").fetchone()
        return float(row[0]) if row is not None else None

    def page(self, f: Filters, now: float | None = None) -> Page:
        """One page of jobs in the dispatcher's order (grouped by case when asked), with
        positions and ETAs computed over the whole queue, not just the filtered rows."""
        now = time.time() if now is None else now
        with self._read() as conn:
            if conn is None:
                return Page([], 0, f, None)
            snap = self._snapshot(conn, now)
            picked = snap.matching(f)
            start = (f.page - 1) * f.per_page
            running_left = self._running_left(conn)
            rows = self._rows(conn, snap, picked[start:start + f.per_page], now, running_left)
            waiting = running_left + (max(snap.queued_ahead) if snap.queued_ahead else 0)
            return Page(rows, len(picked), f, self._throughput(conn), int(waiting))

    @staticmethod
    def _running_left(conn: sqlite3.Connection) -> float:
        return conn.execute("SELECT TOTAL(MAX(0, bytes_total - bytes_done)) FROM jobs "
                            "WHERE state = 'running'").fetchone()[0]

    def _rows(self, conn: sqlite3.Connection, snap: Order, idx: list[int], now: float,
              running_left: float) -> list[Row]:
        if not idx:
            return []
        seqs = [snap.seqs[i] for i in idx]
        got = {r["seq"]: r for r in conn.execute(
            f"SELECT {_COLUMNS}, {EFF} AS eff FROM jobs WHERE seq IN ({', '.join(map(str, seqs))})",
            self._params(now))}
        bps = self._throughput(conn)
        out = []
        for i, seq in zip(idx, seqs):
            r = got.get(seq)
            if r is None:
                continue
            eta = None
            if bps and r["state"] == "running":
                eta = max(0, r["bytes_total"] - r["bytes_done"]) / bps
            elif bps and r["state"] == "queued":
                eta = (running_left + snap.queued_ahead[i]) / bps
            out.append(self._row(r, snap.positions[i] if r["state"] == "queued" else None, eta, now))
        return out

    def job(self, ident: str, now: float | None = None) -> Row | None:
        """One job with its position and ETA, or None."""
        seq = parse_job_id(ident)
        if seq is None:
            return None
        now = time.time() if now is None else now
        with self._read() as conn:
            if conn is None:
                return None
            snap = self._snapshot(conn, now)
            try:
                i = snap.seqs.index(seq)
            except ValueError:
                return None
            rows = self._rows(conn, snap, [i], now, self._running_left(conn))
            return rows[0] if rows else None

    def cases(self, limit: int = 2000) -> list[str]:
        """Case references, for the filter's suggestions."""
        with self._read() as conn:
            if conn is None:
                return []
            return [r[0] for r in conn.execute("SELECT DISTINCT case_ref FROM jobs ORDER BY case_ref LIMIT ?",
                                               (limit,))]

    def case_counts(self, cases: list[str]) -> dict[str, dict[str, int]]:
        """Per case: jobs by state, hits and bytes waiting, for the group headers of a page."""
        if not cases:
            return {}
        marks = ", ".join("?" for _ in cases)
        with self._read() as conn:
            if conn is None:
                return {}
            rows = conn.execute(
                "SELECT case_ref, COUNT(*) AS jobs, SUM(state = 'queued') AS queued,"
                " SUM(state = 'running') AS running, SUM(state = 'done') AS done,"
                " SUM(state IN ('failed', 'cancelled')) AS stopped, SUM(known_bad_hits) AS hits,"
                " SUM(CASE WHEN state IN ('queued', 'running') THEN MAX(0, bytes_total - bytes_done) ELSE 0 END)"
                f" AS waiting FROM jobs WHERE case_ref IN ({marks}) GROUP BY case_ref", cases).fetchall()
        return {r["case_ref"]: {k: int(r[k] or 0) for k in r.keys() if k != "case_ref"} for r in rows}

    def totals(self, now: float | None = None) -> Totals:
        """The whole queue summed: a full scan, for the history sampler (every few seconds), not per poll."""
        now = time.time() if now is None else now
        with self._read() as conn:
            if conn is None:
                return Totals(now, 0, 0, 0, 0, 0, 0, 0, None)
            r = conn.execute(
                "SELECT SUM(state = 'queued'), SUM(state = 'running'), SUM(state = 'done'), SUM(state = 'failed'),"
                " SUM(state = 'cancelled'),"
                " SUM(CASE WHEN state IN ('queued', 'running') THEN MAX(0, bytes_total - bytes_done) ELSE 0 END),"
                " SUM(CASE WHEN state = 'done' THEN bytes_total ELSE bytes_done END) FROM jobs").fetchone()
            return Totals(now, *[int(v or 0) for v in r], throughput_bps=self._throughput(conn))

    def counts(self) -> dict[str, int]:
        """Jobs by state (an index-only read: cheap enough for every poll)."""
        with self._read() as conn:
            if conn is None:
                return {}
            return dict(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())

    def _row(self, r: sqlite3.Row, position: int | None, eta: float | None, now: float) -> Row:
        rate = None
        if r["state"] == "running" and r["started"] is not None and now > r["started"]:
            rate = r["bytes_done"] / (now - r["started"])
        try:
            summary = json.loads(r["summary"]) if r["summary"] else None
        except ValueError:
            summary = None
        return Row(
            id=job_id(r["seq"]), case=r["case_ref"], exhibit=r["exhibit"], examiner=r["examiner"],
            priority=PRIORITY_NAMES[r["prio"]], effective_priority=PRIORITY_NAMES[r["eff"]], state=r["state"],
            cancel_requested=bool(r["cancel_requested"]), position=position, submitted=r["submitted"],
            started=r["started"], finished=r["finished"], attempts=r["attempts"], failure=r["failure"],
            bytes_done=r["bytes_done"], bytes_total=r["bytes_total"], files_done=r["files_done"],
            known_bad_hits=r["known_bad_hits"], results_dir=r["results_dir"],
            eta_seconds=None if eta is None else round(eta, 1), rate_bps=rate, summary=summary)
