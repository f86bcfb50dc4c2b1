"""The job queue: ordering, ageing, leases, state rules, and many processes at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from triage.queue import PRIORITIES, Job, JobNotFoundError, JobStateError, Queue, parse_job_id
from triage.rules.errors import ImageError, InputError


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, seconds: float = 1.0) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def q(tmp_path: Path, clock: Clock) -> Queue:
    with Queue(tmp_path / "state" / "queue.sqlite", clock=clock) as queue:
        yield queue


@pytest.fixture
def image(tmp_path: Path):
    """A factory of small raw images (any non-empty file is a raw image)."""
    def make(name: str, size: int = 4096) -> Path:
        p = tmp_path / "evidence" / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(name.encode().ljust(size, b"\0"))
        return p
    return make


def submit(q: Queue, image, clock: Clock, name: str, priority: str = "normal", case: str = "C1") -> Job:
    clock.tick()
    return q.submit([image(name)], case, f"ex-{name}", priority)


def claim_order(q: Queue) -> list[str]:
    out = []
    while (job := q.claim_next("d1")) is not None:
        out.append(job.exhibit.removeprefix("ex-"))
    return out


def test_priority_then_fifo(q, image, clock):
    for name, prio in [("a", "low"), ("b", "normal"), ("c", "critical"), ("d", "normal"), ("e", "high"),
                       ("f", "critical"), ("g", "low")]:
        submit(q, image, clock, name, prio)
    listed = [j.exhibit.removeprefix("ex-") for j in q.list()]
    assert listed == ["c", "f", "e", "b", "d", "a", "g"]
    assert [j.position for j in q.list()] == [1, 2, 3, 4, 5, 6, 7]
    assert claim_order(q) == ["c", "f", "e", "b", "d", "a", "g"]


def test_ageing_raises_low_one_level_per_step_up_to_high(tmp_path, image):
    clock = Clock()
    q = Queue(tmp_path / "q.sqlite", clock=clock, age_every=1800)
    old = submit(q, image, clock, "old", "low")
    clock.tick(1799)
    assert q.get(old.id).effective_priority == "low"
    submit(q, image, clock, "fresh-normal", "normal")
    clock.tick(1)  # old has waited 30 min: low → normal, and it came first
    assert q.get(old.id).effective_priority == "normal"
    assert [j.exhibit for j in q.list()][:2] == ["ex-old", "ex-fresh-normal"]
    clock.tick(10 * 3600)  # never beyond high: a fresh critical job still goes first
    assert q.get(old.id).effective_priority == "high"
    crit = submit(q, image, clock, "crit", "critical")
    assert q.get(crit.id).position == 1 and q.get(old.id).position == 2
    assert claim_order(q) == ["crit", "old", "fresh-normal"]


def test_ageing_can_be_switched_off(tmp_path, image):
    clock = Clock()
    q = Queue(tmp_path / "q.sqlite", clock=clock, age_every=0)
    submit(q, image, clock, "a", "low")
    clock.tick(10**6)
    assert q.list()[0].effective_priority == "low"


def test_prioritize_restarts_the_ageing_clock(q, image, clock):
    job = submit(q, image, clock, "a", "normal")
    clock.tick(3 * 3600)
    assert q.get(job.id).effective_priority == "high"
    q.prioritize(job.id, "low")
    assert q.get(job.id).effective_priority == "low"


def test_a_running_job_is_never_taken_back_by_time(q, image, clock):
    """One mechanism decides who runs a job: the dispatcher lock. However long a dispatcher
    stalls, claim_next never requeues a running job; only a new lock holder's requeue_orphans does."""
    submitted = submit(q, image, clock, "a")
    job = q.claim_next("dispatcher-1")
    assert job.id == submitted.id and job.state == "running" and job.dispatcher == "dispatcher-1"
    q.update_progress(job, bytes_done=1000, files_done=3, results_dir="/results/a")
    assert q.claim_next("dispatcher-2") is None
    clock.tick(10 * 3600)  # far past any lease the old design had (30 s in the YAML, 120 s in code)
    assert q.claim_next("dispatcher-1") is None and q.claim_next("dispatcher-2") is None
    held = q.get(job.id)
    assert held.state == "running" and held.dispatcher == "dispatcher-1" and held.attempts == 1
    assert q.update_progress(job, bytes_done=1500).bytes_done == 1500  # still its own
    # dispatcher-1 is gone; dispatcher-2 takes the lock and requeues what was left running
    assert [j.id for j in q.requeue_orphans()] == [job.id]
    again = q.claim_next("dispatcher-2")
    assert again.id == job.id and again.dispatcher == "dispatcher-2"
    assert again.attempts == 2 and again.results_dir == "/results/a" and again.bytes_done == 1500
    with pytest.raises(JobStateError, match="no longer held"):
        q.update_progress(job, bytes_done=2000)  # the old dispatcher's Job names its owner
    done = q.finish(again, "/results/a", {"known_bad_hits": 4})
    assert done.state == "done" and done.known_bad_hits == 4 and done.bytes_done == done.bytes_total


def test_requeue_keeps_the_place_in_line(q, image, clock):
    submit(q, image, clock, "first")
    submit(q, image, clock, "second")
    q.claim_next("d1")
    clock.tick(11)
    assert [j.exhibit for j in q.requeue_orphans()] == ["ex-first"]
    assert claim_order(q) == ["first", "second"]


def test_cancel_rules(q, image, clock):
    queued = submit(q, image, clock, "a", case="K")
    running_sub = submit(q, image, clock, "b", case="K", priority="high")
    running = q.claim_next("d1")
    assert running.id == running_sub.id
    done = {j.id: j for j in q.cancel("K")}
    assert done[queued.id].state == "cancelled"
    assert done[running.id].state == "running" and done[running.id].cancel_requested
    assert q.update_progress(running, bytes_done=1).cancel_requested  # what the dispatcher polls
    assert q.mark_cancelled(running).state == "cancelled"
    with pytest.raises(JobStateError, match="nothing to cancel"):
        q.cancel(queued.id)
    with pytest.raises(JobStateError, match="no queued or running"):
        q.cancel("K")
    with pytest.raises(JobNotFoundError):
        q.cancel("no-such-case")


def test_cancel_requested_and_dispatcher_dead_ends_cancelled(q, image, clock):
    submit(q, image, clock, "a")
    job = q.claim_next("d1")
    q.cancel(job.id)
    clock.tick(6)
    assert [j.state for j in q.requeue_orphans()] == ["cancelled"]


def test_retry_rules(q, image, clock):
    job = submit(q, image, clock, "a")
    with pytest.raises(JobStateError, match="only failed or cancelled"):
        q.retry(job.id)
    q.claim_next("d1")
    failed = q.fail(job.id, "disk read error at byte 4096")
    assert failed.state == "failed" and failed.failure == "disk read error at byte 4096"
    again = q.retry(job.id)
    assert again.state == "queued" and again.attempts == 2 and again.failure is None and again.position == 1
    q.cancel(job.id)
    assert q.retry(job.id).attempts == 3
    q.claim_next("d1")
    q.finish(job.id, "/r", {})
    with pytest.raises(JobStateError):
        q.retry(job.id)


def test_retry_refuses_when_the_same_images_are_queued_again(q, image, clock):
    job = submit(q, image, clock, "a")
    q.cancel(job.id)
    second = submit(q, image, clock, "a")
    assert second.id != job.id and not second.existed
    with pytest.raises(JobStateError, match=second.id):
        q.retry(job.id)


def test_prioritize_queued_and_running(q, image, clock):
    a = submit(q, image, clock, "a", case="K")
    b = submit(q, image, clock, "b", case="K")
    other = submit(q, image, clock, "c", case="L")
    running = q.claim_next("d1")
    assert running.id == a.id
    changed = q.prioritize("K", "critical")
    assert {j.id for j in changed} == {a.id, b.id}
    assert q.update_progress(running, bytes_done=1).priority == "critical"  # what the dispatcher polls
    assert q.get(a.id).priority == "critical"
    assert q.get(b.id).position == 1 and q.get(other.id).position == 2
    assert PRIORITIES[q.get(a.id).priority] == 3
    with pytest.raises(InputError, match="unknown priority"):
        q.prioritize("K", "urgent")
    q.finish(a.id, "/r", {})
    with pytest.raises(JobStateError):
        q.prioritize(a.id, "low")


def test_submit_validates_and_is_idempotent_while_active(q, image, clock, tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        q.submit([tmp_path / "missing.dd"], "C", "E", "normal")
    with pytest.raises(InputError):
        q.submit([image("x")], " ", "E", "normal")
    first = q.submit([image("x")], "C", "E", "normal")
    again = q.submit([str(image("x"))], "C", "E", "high")
    assert again.existed and again.id == first.id and again.priority == "normal"
    assert q.submit([image("x")], "C", "E2", "normal").id != first.id  # another exhibit: another job
    q.claim_next("d1")
    assert q.submit([image("x")], "C", "E", "normal").id == first.id  # still running
    q.finish(first.id, "/r", {})
    assert q.submit([image("x")], "C", "E", "normal").id != first.id  # done: a new examination


def test_ids_are_short_and_parse_leniently(q, image, clock):
    job = submit(q, image, clock, "a")
    assert job.id == "J000001"
    assert q.get("j1").id == q.get("1").id == q.get("J000001").id == job.id
    assert parse_job_id("case-7") is None
    with pytest.raises(JobNotFoundError):
        q.get("J999")


def test_throughput_and_eta(q, image, clock):
    first = q.submit([image("a", 1000)], "C", "a", "normal")
    q.claim_next("d1")
    clock.tick(10)
    q.finish(first.id, "/r", {})
    assert q.throughput() == pytest.approx(100.0)
    b = q.submit([image("b", 2000)], "C", "b", "normal")
    c = q.submit([image("c", 3000)], "C", "c", "normal")
    assert q.get(b.id).eta_seconds == pytest.approx(20.0)
    assert q.get(c.id).eta_seconds == pytest.approx(50.0)  # b's bytes ahead of it, then its own
    running = q.claim_next("d1")
    q.update_progress(running, bytes_done=500)
    assert q.get(c.id).eta_seconds == pytest.approx(45.0)


def test_job_round_trips_to_json(q, image, clock):
    d = submit(q, image, clock, "a").to_dict()
    assert d["submitted"].endswith("Z") and isinstance(d["images"], list) and d["state"] == "queued"


# -- many processes ---------------------------------------------------------------------


def _submit_in_child(db: str, img: str, case: str, exhibit: str, barrier, out) -> None:
    barrier.wait()
    with Queue(db) as q:
        out.put(q.submit([img], case, exhibit, "normal").id)


def _run_children(db: Path, args: list[tuple[str, str, str]]) -> list[str]:
    ctx = multiprocessing.get_context("fork")  # children start with the modules already imported
    barrier, out = ctx.Barrier(len(args)), ctx.Queue()
    procs = [ctx.Process(target=_submit_in_child, args=(str(db), *a, barrier, out)) for a in args]
    for p in procs:
        p.start()
    ids = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return ids


@pytest.mark.slow
def test_fifty_concurrent_submit_processes_lose_nothing(tmp_path, image):
    db = tmp_path / "fresh" / "queue.sqlite"  # not created yet: the processes race to create it too
    ids = _run_children(db, [(str(image(f"img{i}")), "C", f"E{i}") for i in range(50)])
    assert len(set(ids)) == 50
    with Queue(db) as q:
        jobs = q.list()
    assert sorted(j.id for j in jobs) == sorted(ids)
    assert sorted(j.exhibit for j in jobs) == sorted(f"E{i}" for i in range(50))


@pytest.mark.slow
def test_the_same_submission_from_many_processes_is_one_job(tmp_path, image):
    db = tmp_path / "queue.sqlite"
    ids = _run_children(db, [(str(image("same")), "C", "E")] * 20)
    assert len(set(ids)) == 1
    with Queue(db) as q:
        assert len(q.list()) == 1
