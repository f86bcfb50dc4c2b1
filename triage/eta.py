"""Queue positions and ETAs from a measured throughput.

Finished jobs feed a stored throughput (bytes/s, exponentially weighted); a job's
ETA is the bytes left in running jobs, in queued jobs ahead of it and in itself,
divided by that throughput. It assumes one job at a time, so with several jobs in
parallel it is an upper bound.
"""

from __future__ import annotations

import sqlite3

THROUGHPUT_WEIGHT = 0.3  # weight of the newest finished job in the throughput average


def throughput(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'throughput_bps'").fetchone()
    return float(row[0]) if row is not None else None


def record_finished(conn: sqlite3.Connection, nbytes: int, seconds: float) -> None:
    """Feed one finished job's rate into the stored average."""
    if seconds <= 0 or nbytes <= 0:
        return
    rate = nbytes / seconds
    old = throughput(conn)
    new = rate if old is None else THROUGHPUT_WEIGHT * rate + (1 - THROUGHPUT_WEIGHT) * old
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('throughput_bps', ?)", (new,))


def positions(conn: sqlite3.Connection, running: list[sqlite3.Row], queued_in_order: list[sqlite3.Row],
              ) -> dict[int, tuple[int, float | None]]:
    """seq -> (position in line, 0 for running; ETA seconds or None)."""
    bps = throughput(conn)
    left = [max(0, r["bytes_total"] - r["bytes_done"]) for r in running]
    where: dict[int, tuple[int, float | None]] = {
        r["seq"]: (0, n / bps if bps else None) for r, n in zip(running, left)}
    ahead = sum(left)
    for pos, r in enumerate(queued_in_order, 1):
        ahead += max(0, r["bytes_total"] - r["bytes_done"])
        where[r["seq"]] = (pos, ahead / bps if bps else None)
    return where
