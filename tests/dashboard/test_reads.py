"""The dashboard's read-only queue views agree with the queue itself.

``QueueReader`` orders, places and times jobs with its own SQL (fast over 10,000 jobs);
``Queue.list()`` is the dispatcher's own definition. Same queue file, same clock: the
same order, positions, effective priorities (with ageing) and ETAs, whatever the filters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.dashboard.model import Filters
from triage.dashboard.reads import QueueReader
from triage.queue import Queue

T0 = 1_700_000_000.0
AGE = 100.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def queue(tmp_path: Path, tiny_disk: Path) -> tuple[Queue, QueueReader, Clock]:
    clock = Clock()
    q = Queue.at(tmp_path, age_every=AGE, clock=clock)
    prios = ["low", "normal", "high", "critical", "low", "normal"]
    for i in range(30):
        clock.now += 7
        q.submit([tiny_disk], case=f"OP-{i % 4}", exhibit=f"E{i}", priority=prios[i % 6])
    # a few in every state: two running with progress, one done, one failed, one cancelled
    clock.now += 1
    a = q.claim_next("test:1")
    b = q.claim_next("test:1")
    q.update_progress(a, bytes_done=1000, owner="test:1")
    q.update_progress(b, bytes_done=3000, owner="test:1")
    c = q.claim_next("test:1")
    q.finish(c, tmp_path / "results", {"known_bad_hits": 2}, owner="test:1")
    d = q.claim_next("test:1")
    q.fail(d, "broken", owner="test:1")
    q.cancel("J000007")
    q.prioritize("OP-3", "high")
    yield q, QueueReader(tmp_path, age_every=AGE), clock
    q.close()


def _expected(q: Queue) -> list[tuple[str, int | None, str, float | None]]:
    return [(j.id, j.position, j.effective_priority, j.eta_seconds) for j in q.list()]


def _got(r: QueueReader, now: float, **kw: object) -> list[tuple[str, int | None, str, float | None]]:
    page = r.page(Filters(grouped=False, per_page=500, **kw), now=now)
    return [(j.id, j.position, j.effective_priority, j.eta_seconds) for j in page.rows]


def test_same_order_positions_and_eta_as_the_queue(queue: tuple[Queue, QueueReader, Clock]) -> None:
    q, r, clock = queue
    assert _got(r, clock.now) == _expected(q)
    # ageing: as time passes, low and normal jobs rise and the order changes with them
    for step in (AGE * 0.5, AGE, AGE * 2.5):
        clock.now += step
        assert _got(r, clock.now) == _expected(q), step
    assert any(j.aged for j in r.page(Filters(grouped=False, per_page=500), now=clock.now).rows)


def test_order_follows_a_change_of_priority(queue: tuple[Queue, QueueReader, Clock]) -> None:
    q, r, clock = queue
    before = _got(r, clock.now)
    last_queued = [row for row in before if row[1] is not None][-1][0]
    q.prioritize(last_queued, "critical")
    after = _got(r, clock.now)
    assert after == _expected(q)
    assert [row for row in after if row[1] == 1][0][0] == last_queued


def test_filters_and_paging(queue: tuple[Queue, QueueReader, Clock]) -> None:
    q, r, clock = queue
    every = q.list()
    assert [j.id for j in r.page(Filters(grouped=False, per_page=500, state="queued"), now=clock.now).rows] == [
        j.id for j in every if j.state == "queued"]
    assert [j.id for j in r.page(Filters(grouped=False, per_page=500, state="active"), now=clock.now).rows] == [
        j.id for j in every if j.state in ("queued", "running")]
    assert [j.id for j in r.page(Filters(grouped=False, per_page=500, priority="high"), now=clock.now).rows] == [
        j.id for j in every if j.effective_priority == "high"]
    assert [j.id for j in r.page(Filters(grouped=False, per_page=500, case="op-2"), now=clock.now).rows] == [
        j.id for j in every if j.case == "OP-2"]
    pages = [r.page(Filters(grouped=False, per_page=7, page=n), now=clock.now) for n in range(1, 6)]
    assert pages[0].total == len(every) and pages[0].pages == 5
    assert [j.id for p in pages for j in p.rows] == [j.id for j in every]


def test_grouped_by_case_in_the_order_of_each_case_s_most_urgent_job(
        queue: tuple[Queue, QueueReader, Clock]) -> None:
    q, r, clock = queue
    every = q.list()
    grouped = [j.id for j in r.page(Filters(per_page=500), now=clock.now).rows]
    cases = list(dict.fromkeys(j.case for j in every))  # cases by their first job in dispatcher order
    assert grouped == [j.id for c in cases for j in every if j.case == c]


def test_counts_totals_and_a_missing_queue(queue: tuple[Queue, QueueReader, Clock], tmp_path: Path) -> None:
    q, r, clock = queue
    every = q.list()
    counts = r.counts()
    assert counts == {s: sum(j.state == s for j in every) for s in {j.state for j in every}}
    t = r.totals(now=clock.now)
    assert t.bytes_waiting == sum(max(0, j.bytes_total - j.bytes_done) for j in every if j.state in ("queued", "running"))
    empty = QueueReader(tmp_path / "nowhere")
    assert empty.page(Filters()).rows == [] and empty.counts() == {} and empty.job("J000001") is None
    assert not (tmp_path / "nowhere").exists()  # reading never creates the queue


def test_every_kind_of_change_is_patched_in_place_and_agrees_with_the_queue(
        queue: tuple[Queue, QueueReader, Clock], tiny_disk: Path) -> None:
    """Claims, finishes, failures, cancels, retries, re-prioritisations, requeues and new jobs, in a seeded
    random sequence: after each, the reader's order is the queue's, and most were patched, not rebuilt."""
    import random

    q, r, clock = queue
    rng = random.Random(12)
    patched = ops = 0
    _got(r, clock.now)
    for step in range(80):
        clock.now += rng.choice((0.2, 0.5, 1.0))
        jobs = q.list()
        running = [j for j in jobs if j.state == "running"]
        queued = [j for j in jobs if j.state == "queued"]
        stopped = [j for j in jobs if j.state in ("failed", "cancelled")]
        kind = rng.choice(("claim", "finish", "fail", "cancel", "retry", "prioritize", "case", "submit", "requeue"))
        if kind == "claim" and queued:
            q.claim_next("test:1")
        elif kind == "finish" and running:
            q.finish(rng.choice(running), r.path.parent / "results", {"known_bad_hits": 0},
                     owner="test:1")
        elif kind == "fail" and running:
            q.fail(rng.choice(running), "broken", owner="test:1")
        elif kind == "cancel" and queued:
            q.cancel(rng.choice(queued).id)
        elif kind == "retry" and stopped:
            q.retry(rng.choice(stopped))
        elif kind == "prioritize" and queued:
            q.prioritize(rng.choice(queued).id, rng.choice(("low", "normal", "high", "critical")))
        elif kind == "case":
            q.prioritize(f"OP-{rng.randrange(4)}", rng.choice(("low", "high")))
        elif kind == "submit":
            q.submit([tiny_disk], case=f"OP-{rng.randrange(5)}", exhibit=f"N{step}", priority="normal")
        elif kind == "requeue" and running:
            q.requeue_orphans()
        else:
            continue
        ops += 1
        before = r._snap
        assert _got(r, clock.now) == _expected(q), (step, kind)
        grouped = [j.id for j in r.page(Filters(per_page=500), now=clock.now).rows]
        every = q.list()
        assert grouped == [j.id for c in dict.fromkeys(j.case for j in every) for j in every if j.case == c]
        patched += r._snap is before
    assert ops >= 60 and patched >= ops // 2, (ops, patched)


def test_a_version_1_queue_file_gets_the_new_indexes_and_keeps_its_jobs(tmp_path: Path, tiny_disk: Path) -> None:
    import sqlite3

    from triage import queuedb

    with Queue.at(tmp_path) as q:
        ids = [q.submit([tiny_disk], case="OP-OLD", exhibit=f"E{i}").id for i in range(3)]
    db = sqlite3.connect(tmp_path / queuedb.FILENAME)
    for name in ("jobs_age_from", "jobs_ready_at", "jobs_finished"):  # as version 1 left the file
        db.execute(f"DROP INDEX {name}")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with Queue.at(tmp_path) as q:
        assert [j.id for j in q.list()] == ids
    db = sqlite3.connect(tmp_path / queuedb.FILENAME)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"jobs_age_from", "jobs_ready_at", "jobs_finished"} <= names
    assert db.execute("PRAGMA user_version").fetchone()[0] == queuedb.SCHEMA_VERSION == 2
    from triage.dashboard.order import _CHANGED

    plan = [tuple(r)[3] for r in db.execute(f"EXPLAIN QUERY PLAN {_CHANGED}",
                                            {"top": 3, "age": 1.0, "ready": 1.0, "fin": 1.0})]
    db.close()
    assert not any(p.startswith("SCAN") for p in plan), plan  # range reads on the indexes, no table scan
    assert sum("jobs_age_from" in p or "jobs_ready_at" in p or "jobs_finished" in p for p in plan) == 3, plan
