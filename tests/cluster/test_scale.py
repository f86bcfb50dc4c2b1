"""Scaling under a live backlog: external workers join and get tasks within seconds, a retired worker
loses nothing, and ``serve --workers MIN:MAX`` grows its local cluster with the backlog and shrinks it."""

from __future__ import annotations

import re
import time

import pytest

from triage.cluster.status import worker_events, worker_probe
from triage_test_fixtures.backlog import Serve, peek, submit, wait_for

from .conftest import ENV

pytestmark = pytest.mark.slow

JOIN_WITHIN = 20.0  # seconds for a new worker to run its first task of the backlog (about 2 on a quiet machine)


def _job_dir(home, job):
    return home / "jobs" / job / "results"


def test_workers_join_a_running_backlog_and_a_retired_one_loses_nothing(dask_procs, small_disk, small_reference,
                                                                        tmp_path, cli):
    dask_procs.start_scheduler()
    dask_procs.start_worker("a")
    home = tmp_path / "home"
    with Serve(home, scheduler=dask_procs.address, env=ENV, log=tmp_path / "serve.log") as serve:
        serve.start()
        # a backlog that stays running until b has joined: one small exhibit takes a worker about 3 s,
        # less than a worker process takes to start on a loaded machine, so exhibits are topped up
        jobs: list[str] = []

        def top_up() -> None:  # at least two exhibits waiting or under way
            for _ in range(2 - sum(s in ("queued", "running") for s in _states(home, jobs))):
                jobs.append(submit(home, small_disk, "OP-SCALE", f"S/{len(jobs) + 1}", "normal"))

        top_up()
        wait_for("the backlog to be under way", lambda: peek(home)[jobs[0]]["bytes_done"] > 0, timeout=120,
                 explain=serve.log_tail)
        t0 = time.monotonic()
        dask_procs.start_worker("b", wait=False)
        with dask_procs.client() as c:
            def b_ran() -> bool:
                top_up()
                b = next((a for a, w in c.scheduler_info(n_workers=-1)["workers"].items() if w["name"] == "b"), None)
                return b is not None and c.run(worker_probe, workers=[b])[b]["executed"] > 0

            wait_for("worker b to run a task of the backlog", b_ran, timeout=JOIN_WITHIN + 60,
                     explain=lambda: f"jobs: {_states(home, jobs)}\n{serve.log_tail()}")
        joined = time.monotonic() - t0
        assert joined < JOIN_WITHIN, f"worker b ran its first task {joined:.1f} s after it was started"
        top_up()
        states = _states(home, jobs)
        assert any(s in ("queued", "running") for s in states), states  # the retirement happens mid-backlog
        r = cli("cluster", "retire", "a", "--scheduler", dask_procs.address)
        assert r.returncode == 0, r.stderr
        assert set(dask_procs.workers()) == {"b"}
        wait_for("the backlog to finish", lambda: all(s in ("done", "failed") for s in _states(home, jobs)),
                 timeout=300, explain=serve.log_tail)
        assert _states(home, jobs) == ["done"] * len(jobs), peek(home)
    for job in jobs:
        for name in ("files.parquet", "volumes.parquet"):
            assert (_job_dir(home, job) / name).read_bytes() == (small_reference / name).read_bytes(), (job, name)


def _states(home, jobs):
    q = peek(home)
    return [q[j]["state"] for j in jobs]


def test_serve_adaptive_local_cluster_grows_with_the_backlog_and_releases_idle_workers(small_disk, small_reference,
                                                                                       tmp_path):
    from distributed import Client

    home = tmp_path / "home"
    # the scaler asks for ceil(queued + running work / target duration) workers, at most one a task: a
    # small exhibit's tasks take tens of ms on a fast machine, so with 0.2 s one worker always sufficed
    env = {**ENV, "DASK_DISTRIBUTED__ADAPTIVE__TARGET_DURATION": "0.01s"}
    with Serve(home, workers="1:3", env=env, log=tmp_path / "serve.log") as serve:  # type: ignore[arg-type]
        serve.start()
        address = wait_for("serve to print its scheduler",
                           lambda: (m := re.search(r"scheduler (tcp://[\d.:]+)", serve.log_tail())) and m.group(1),
                           timeout=120, explain=serve.log_tail)
        with Client(address, timeout="20s") as c:
            def count() -> int:
                return len(c.scheduler_info(n_workers=-1)["workers"])

            wait_for("the minimum of one worker", lambda: count() == 1, timeout=60)
            # three exhibits at once: a backlog that lasts longer than a worker process takes to start on a
            # loaded machine (one small job alone could end before the added worker had joined)
            jobs = [submit(home, small_disk, "OP-ADAPT", f"D/{n}", "normal") for n in (1, 2, 3)]
            job = jobs[0]
            most = 1
            while True:
                states = _states(home, jobs)  # one read of the queue a round
                if all(s in ("done", "failed") for s in states):
                    break
                most = max(most, count())
                # until the cluster has grown, keep two exhibits unfinished: a fast machine can work three
                # small ones off before an added worker process has started (bounded: 12 in all)
                if most < 2 and sum(s != "done" for s in states) < 2 and len(jobs) < 12:
                    jobs.append(submit(home, small_disk, "OP-ADAPT", f"D/{len(jobs) + 1}", "normal"))
                time.sleep(0.3)
            assert all(peek(home)[j]["state"] == "done" for j in jobs)
            joined = sum(e["event"] == "joined" for e in worker_events(c, limit=1000))  # also between two samples
            assert max(most, joined) >= 2, "the cluster never grew while tasks waited"
            wait_for("idle workers to be released", lambda: count() == 1, timeout=60)
    for name in ("files.parquet", "volumes.parquet"):
        assert (_job_dir(home, job) / name).read_bytes() == (small_reference / name).read_bytes(), name
