"""One mechanism decides which dispatcher runs a job: the state directory's lock file.

Leases are gone: a dispatcher that stalls (restoring thousands of checkpoints of a
big resumed job, a long GC pause, a suspended VM) never requeues its own running
job, never loses a future, and the job ends as an uninterrupted run does.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dask.config
import pytest

from triage.audit import AuditLog
from triage.demo import build_sample
from triage.dispatcher import Dispatcher, DispatcherLockedError
from triage.queue import Queue


class StallingClock:
    """The queue's clock: every transaction happens an hour after the one before, as if the
    dispatcher stalled for an hour between any two of its queue calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return time.time() + 3600.0 * self.calls


@pytest.mark.slow
def test_a_stalled_dispatcher_keeps_its_jobs(client, tmp_path: Path) -> None:
    from triage.pipeline import run_image

    home = tmp_path / "home"
    image = build_sample(tmp_path / "sample.dd")
    reference = run_image(image, tmp_path / "reference", client, carve="none")
    with Queue.at(home) as q:
        job = q.submit([image], "OP-STALL", "A", "normal")
    d = Dispatcher(client, str(home), max_jobs=2, once=True)  # room for a second job: claim_next runs every loop
    d.queue.close()
    d.queue = Queue.at(home, clock=(clock := StallingClock()))
    with dask.config.set({"triage.carve.mode": "none"}):  # as the reference run
        d.serve()
    assert clock.calls > 10  # many "hours" passed during the job
    with Queue.at(home) as q:
        done = q.get(job.id)
    assert done.state == "done" and done.attempts == 1 and done.failure is None
    assert done.bytes_done == done.bytes_total > 0
    actions = [r["action"] for r in AuditLog.at(home).records() if r.get("job") == job.id]
    assert "requeue" not in actions and actions.count("start") == 1 and actions.count("finish") == 1
    got = Path(done.results_dir) / "files.parquet"
    assert got.read_bytes() == (reference.out / "files.parquet").read_bytes()


def test_a_second_dispatcher_is_refused(client, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = Dispatcher(client, str(home))
    first._take_lock()
    try:
        with pytest.raises(DispatcherLockedError, match="another dispatcher"):
            Dispatcher(client, str(home))._take_lock()
    finally:
        first.queue.close()
        os.close(first._lock_fd)
