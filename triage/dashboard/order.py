"""Every job's place in line, kept between polls and *patched* when the order changes.

Why patched, not rebuilt: the order changes at every claim, finish, cancel, retry and
re-prioritisation, i.e. every few seconds under a working dispatcher. Reading all
10,000 rows again costs tens of milliseconds (the time goes into stepping the rows and
making Python objects, not I/O: a covering index did not make that read faster), which
is over a live update's 50 ms budget on a loaded machine. But each of those changes
touches few rows, and each leaves a trace a range read on an index can find:

* a new job has a ``seq`` above the highest known;
* a claim, finish, failure or requeue changes a *running* job (read by ``state``: few);
* a cancel of a queued job sets ``finished``; a retry sets ``ready_at`` and ``age_from``;
  a re-prioritisation sets ``age_from``: each to the writer's clock, so at or above the
  highest value the snapshot saw (``queuedb``'s indexes on these columns make that a
  range read).

:meth:`Order.patch` reads just those rows, moves their sort keys (bisect in a sorted
list) and derives positions, bytes ahead and the grouping again in one pass. Whatever
it cannot vouch for falls back to a full :meth:`Order.build`: counts per state that do
not add up, an ageing step that came due, a snapshot older than ``MAX_AGE`` seconds (a
writer whose clock went back is caught there), more than ``MAX_PATCH`` changed rows.

The sort key is the dispatcher's order (``triage/queue.py``): running first, then queued
by effective priority (ageing capped at ``AGE_CAP``), then FIFO by ``ready_at``; then
the finished ones, newest first; ``seq`` breaks ties. ``tests/dashboard/test_reads.py``
holds it to ``Queue.list()``.
"""

from __future__ import annotations

import bisect
import itertools
import sqlite3
from collections import Counter
from operator import itemgetter
from dataclasses import dataclass, field
from typing import Any

from triage.dashboard.model import Filters
from triage.queue import PRIORITIES

#: effective priority at :now (the same expression as the queue's)
EFF = ("CASE WHEN state != 'queued' OR prio >= :cap THEN prio "
       "ELSE MIN(:cap, prio + MAX(0, CAST((:now - age_from) / :step AS INTEGER))) END")
_FIELDS = f"seq, case_ref, state, {EFF}, prio, age_from, ready_at, finished, MAX(0, bytes_total - bytes_done)"
_MARKS = ("SELECT (SELECT MAX(seq) FROM jobs), (SELECT MAX(age_from) FROM jobs), "
          "(SELECT MAX(ready_at) FROM jobs), (SELECT MAX(finished) FROM jobs)")
#: the rows that can have moved since marks were taken: one index range read each (an OR of the same
#: terms makes SQLite scan the table, as it cannot tell how few rows each range holds)
_CHANGED = ("SELECT seq FROM jobs WHERE seq > :top UNION ALL SELECT seq FROM jobs WHERE state = 'running' "
            "UNION ALL SELECT seq FROM jobs WHERE age_from >= :age UNION ALL SELECT seq FROM jobs "
            "WHERE ready_at >= :ready UNION ALL SELECT seq FROM jobs WHERE finished >= :fin")
#: rebuild in full at least this often, whatever the change checks say
MAX_AGE = 10.0
#: more changed rows than this: a full build is as cheap
MAX_PATCH = 500


def sort_key(seq: int, state: str, eff: int, ready_at: float, finished: float | None) -> tuple:
    if state == "running":
        return (0, 0, 0.0, 0.0, seq)
    if state == "queued":
        return (1, -eff, ready_at, 0.0, seq)
    return (2, 0, 0.0, -(finished or 0.0), seq)


@dataclass
class Order:
    """The order of every job plus what a page needs of it; see the module's docstring."""

    signature: tuple
    built: float                  # when the last full build was made
    valid_until: float            # the next ageing step of a queued job (or built + MAX_AGE)
    marks: tuple                  # highest seq, age_from, ready_at, finished seen
    rows: dict[int, tuple]        # seq -> (case, state, eff, prio, age_from, ready_at, finished, left)
    keys: list[tuple]             # sort keys, sorted
    seqs: list[int] = field(default_factory=list)       # dispatcher order
    cases: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    effs: list[int] = field(default_factory=list)
    positions: list[int | None] = field(default_factory=list)  # 1 = claimed next
    queued_ahead: list[int] = field(default_factory=list)  # bytes left in queued jobs up to this one
    grouped: list[int] = field(default_factory=list)    # indexes into the lists above, grouped by case
    picked: dict[tuple, list[int]] = field(default_factory=dict)  # filtered orders already worked out
    running: list[int] = field(default_factory=list)    # seqs of the running jobs
    queued: int = 0                                     # how many are queued

    @classmethod
    def build(cls, conn: sqlite3.Connection, signature: tuple, now: float, params: dict[str, Any],
              age_every: float) -> Order:
        cur = conn.cursor()
        cur.row_factory = None  # plain tuples: 10,000 of them
        rows = {r[0]: r[1:] for r in cur.execute(f"SELECT {_FIELDS} FROM jobs", params)}
        keys = sorted(sort_key(s, r[1], r[2], r[5], r[6]) for s, r in rows.items())
        order = cls(signature, now, now + MAX_AGE, tuple(cur.execute(_MARKS).fetchone()), rows, keys)
        order._derive(params["cap"], age_every)
        return order

    def patch(self, conn: sqlite3.Connection, signature: tuple, now: float, params: dict[str, Any],
              age_every: float) -> bool:
        """Bring the order up to date from the rows that changed; False when only a full build can."""
        if now >= self.valid_until:
            return False
        top, age, ready, fin = self.marks
        cur = conn.cursor()
        cur.row_factory = None
        changed = cur.execute(
            f"SELECT {_FIELDS} FROM jobs WHERE seq IN ({_CHANGED} UNION ALL SELECT seq FROM jobs "
            f"WHERE seq IN ({', '.join(map(str, self.running)) or 'NULL'}))",
            {**params, "top": top or 0, "age": age or 0.0, "ready": ready or 0.0,
             "fin": fin if fin is not None else 0.0}).fetchmany(MAX_PATCH + 1)
        if len(changed) > MAX_PATCH:
            return False
        for seq, *row in changed:
            old = self.rows.get(seq)
            if old is not None:
                del self.keys[bisect.bisect_left(self.keys, sort_key(seq, old[1], old[2], old[5], old[6]))]
            self.rows[seq] = tuple(row)
            bisect.insort(self.keys, sort_key(seq, row[1], row[2], row[5], row[6]))
        self._derive(params["cap"], age_every)
        lo, hi = len(self.running), len(self.running) + self.queued
        counts = Counter(self.states[hi:]) + Counter({"running": lo, "queued": hi - lo})
        if tuple(sorted(counts.items())) != signature[1]:  # a change the traces above do not show
            return False
        self.signature = signature
        self.marks = tuple(cur.execute(_MARKS).fetchone())
        self.picked = {}
        return True

    def matching(self, f: Filters) -> list[int]:
        """Indexes of the jobs the filters keep, in page order (kept: an open page asks again every second)."""
        key = (f.case.casefold(), f.state, f.priority, f.grouped)
        got = self.picked.get(key)
        if got is not None:
            return got
        order = self.grouped if f.grouped else range(len(self.seqs))
        needle = key[0]
        want = PRIORITIES[f.priority] if f.priority else None
        got = list(order) if not (needle or f.state or want is not None) else [i for i in order
               if (not needle or needle in self.cases[i].casefold())
               and (not f.state or self.states[i] == f.state
                    or f.state == "active" and self.states[i] in ("queued", "running"))
               and (want is None or self.effs[i] == want)]
        if len(self.picked) > 64:
            self.picked.clear()
        self.picked[key] = got
        return got

    def _derive(self, cap: int, age_every: float) -> None:
        """Positions, bytes ahead, the grouping by case and the next ageing step, from the sorted keys.

        Written as list comprehensions and C-level helpers, no per-row Python loop: this runs at
        every change of order. Running jobs sort first, then the queued ones, so the queued are
        one slice of the order."""
        self.seqs = list(map(itemgetter(4), self.keys))
        vals = list(map(self.rows.__getitem__, self.seqs))
        self.cases = list(map(itemgetter(0), vals))
        self.states = list(map(itemgetter(1), vals))
        self.effs = list(map(itemgetter(2), vals))
        lo = bisect.bisect_left(self.keys, (1,))
        hi = bisect.bisect_left(self.keys, (2,))
        n = len(vals)
        self.positions = [None] * lo + list(range(1, hi - lo + 1)) + [None] * (n - hi)
        self.queued_ahead = [0] * lo + list(itertools.accumulate(map(itemgetter(7), vals[lo:hi]))) + [0] * (n - hi)
        rank = {c: k for k, c in enumerate(dict.fromkeys(self.cases))}  # cases by their most urgent job
        ranks = list(map(rank.__getitem__, self.cases))
        self.grouped = sorted(range(n), key=ranks.__getitem__)  # stable: dispatcher order within a case
        valid_until = self.built + MAX_AGE
        if age_every > 0:  # when a queued job next gains a level
            valid_until = min([valid_until] + [v[4] + (v[2] - v[3] + 1) * age_every for v in vals[lo:hi]
                                               if v[2] < cap])
        self.valid_until = valid_until
        self.running = self.seqs[:lo]
        self.queued = hi - lo
