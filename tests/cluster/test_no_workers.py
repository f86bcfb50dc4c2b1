"""A cluster that loses every worker: why it happens, and a ``triage run`` that ends saying so instead of hanging.

The first test is the root cause of the hang the ten-job churn test showed once: a task
the workers cannot read (its code cannot be imported there; in that run the source tree
was being edited under it) makes each worker of a LocalCluster close itself *and its
nanny*, so the cluster ends with no worker and the task waits forever. The watch
(:mod:`triage.cluster.watch`) turns that into one line after ``cluster.no-workers-seconds``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from triage.cluster.connect import connect
from triage.cluster.watch import NoWorkersError, WorkerWatch
from triage_test_fixtures.backlog import wait_for
from triage_test_fixtures.cli import triage_command

from .conftest import ENV, DaskProcs

pytestmark = pytest.mark.slow


def test_a_task_no_worker_can_read_leaves_a_local_cluster_without_workers_and_the_watch_says_why(tmp_path: Path):
    with connect(workers=2) as client:
        # a module only this process can import (the workers were started before it existed on sys.path)
        (tmp_path / "only_in_the_client.py").write_text("def add_one(x):\n    return x + 1\n")
        sys.path.insert(0, str(tmp_path))
        try:
            import only_in_the_client

            fut = client.submit(only_in_the_client.add_one, 1, key="content-unreadable-1", pure=False)
            wait_for("both local workers to be gone", lambda: not client.nthreads(), timeout=60)
            time.sleep(1)
            assert not client.nthreads(), "a nanny restarted its worker: the cause is not what this test shows"
            assert fut.status == "pending"  # nothing will ever run or fail it: this is what hung
            watch = WorkerWatch(client, limit=1.0)
            watch.check(1)  # the first look starts the clock
            time.sleep(1.2)
            with pytest.raises(NoWorkersError) as err:
                watch.check(1)
        finally:
            sys.path.remove(str(tmp_path))
            sys.modules.pop("only_in_the_client", None)
    msg = str(err.value)
    assert "\n" not in msg and "no Dask worker for" in msg and "1 task(s) waiting" in msg, msg
    assert "2 worker(s) lost unexpectedly while running content-unreadable tasks" in msg, msg
    assert "nannies closed" in msg, msg


def test_a_run_whose_workers_all_die_fails_in_one_line_instead_of_waiting(small_disk: Path, tmp_path: Path):
    procs = DaskProcs(tmp_path)
    try:
        procs.start_scheduler()
        nanny = procs.start_worker("only")
        out = tmp_path / "out"
        run = subprocess.Popen([*triage_command(), "run", str(small_disk), "-o", str(out), "--scheduler",
                                procs.address, "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONWARNINGS": "ignore", **ENV,
                                               "DASK_TRIAGE__CLUSTER__NO_WORKERS_SECONDS": "3"})
        from distributed import Client

        with Client(procs.address, timeout=30) as watcher:
            addr = next(iter(watcher.scheduler_info()["workers"]))
            wait_for("the worker to hold a task", lambda: watcher.processing().get(addr), timeout=120, interval=0.05)
        os.killpg(nanny.pid, signal.SIGKILL)  # the machine is gone: worker and nanny, nothing restarts it
        t0 = time.monotonic()
        stdout, stderr = run.communicate(timeout=120)
        waited = time.monotonic() - t0
    finally:
        procs.close()
    assert run.returncode == 5, (run.returncode, stderr[-3000:])
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("triage: error: ") and "no Dask worker for" in line and "waiting" in line, stderr
    assert "no-workers-seconds: 3" in line and "lost unexpectedly" in line, line
    assert waited < 60, waited
    assert not (out / "files.parquet").exists()  # nothing half-written is committed


def test_workers_back_is_recorded_when_the_returning_worker_finishes_between_two_looks(small_disk: Path,
                                                                                       tmp_path: Path):
    """The dashboard's warning that stayed for ever: serve reported ``workers-none``, a worker joined and
    handed back every remaining result before any wait for results timed out (a small job's last tasks),
    the job ended, and the watch, asked only after a timed-out wait, never said the workers were back."""
    from distributed import wait

    from triage.driver import Driver
    from triage.runstate import ImageRun

    procs = DaskProcs(tmp_path)
    events: list[tuple[str, dict]] = []
    try:
        procs.start_scheduler()
        with procs.client() as client:
            watch = WorkerWatch(client, limit=0.0, every=0.2, record=lambda a, d: events.append((a, d)))
            driver = Driver(client, watch=watch)
            run = ImageRun(small_disk, tmp_path / "out", workdir=tmp_path / "work")
            wait_for("the watch to report no workers",
                     lambda: driver.step([run], timeout=0.5) == [] and [a for a, _ in events] == ["workers-none"],
                     timeout=30)
            procs.start_worker("late")
            watch.every = 3600.0  # from here on no wait times out: the results come back between two looks
            wait([f for _, _, f in driver._inflight.values()], timeout=120)
            while not run.finished:
                assert driver.step([run], timeout=120) == []
    finally:
        procs.close()
    assert [a for a, _ in events] == ["workers-none", "workers-back"], events
    assert events[1][1]["workers"] == 1 and events[1][1]["outage_seconds"] > 0, events
