"""The scheduler killed mid-backlog and restarted: ``triage serve`` reconnects, resumes, loses nothing."""

from __future__ import annotations

import time

import pytest

from triage_test_fixtures.backlog import Serve, audit, build_tiny_disk, peek, submit, wait_for

from .conftest import ENV

pytestmark = pytest.mark.slow


def test_scheduler_restart_mid_backlog_resumes_every_job(dask_procs, small_disk, small_reference, fault_dir, tmp_path):
    tiny = build_tiny_disk(fault_dir, 5)
    dask_procs.start_scheduler()
    dask_procs.start_worker("a")
    dask_procs.start_worker("b")
    home = tmp_path / "home"
    env = {**ENV, "DASK_TRIAGE__CLUSTER__RECONNECT_SECONDS": "120"}
    with Serve(home, scheduler=dask_procs.address, env=env, log=tmp_path / "serve.log") as serve:
        serve.start()
        big = submit(home, small_disk, "OP-OUTAGE", "A/1", "high")
        small = submit(home, tiny, "OP-OUTAGE", "A/2", "normal")
        wait_for("the first job to be part done", lambda: peek(home)[big]["bytes_done"] > 0, timeout=120,
                 explain=serve.log_tail)
        dask_procs.kill_scheduler()
        time.sleep(3)  # an outage the dispatcher must notice and ride out
        assert serve.alive(), serve.log_tail()
        dask_procs.start_scheduler()
        # a dask worker exits when its scheduler goes away; its service manager (systemd Restart=always,
        # compose `restart: unless-stopped`, Kubernetes) starts it again, as here
        dask_procs.start_worker("a2")
        dask_procs.start_worker("b2")
        states = wait_for("both jobs to finish", lambda: (lambda q: q if all(
            q[j]["state"] in ("done", "failed") for j in (big, small)) else None)(peek(home)),
            timeout=240, explain=serve.log_tail)
        assert serve.alive(), serve.log_tail()
        assert states[big]["state"] == "done" and states[small]["state"] == "done", (states, serve.log_tail())
    got = states[big]["results_dir"]
    for name in ("files.parquet", "volumes.parquet"):
        assert (small_reference / name).read_bytes() == (tmp_path / "home" / "jobs" / big / "results" / name
                                                        ).read_bytes(), (name, got)
    records = audit(home)
    actions = [r["action"] for r in records]
    assert "scheduler-lost" in actions and "scheduler-reconnected" in actions, actions
    back = next(r for r in records if r["action"] == "scheduler-reconnected")
    assert back["details"]["outage_seconds"] >= 3
    for job in (big, small):  # finished once each, never failed
        mine = [r["action"] for r in records if r["job"] == job]
        assert mine.count("finish") == 1 and "fail" not in mine, mine


def test_a_scheduler_that_stays_away_stops_serve_with_the_jobs_back_in_line(dask_procs, small_disk, tmp_path):
    dask_procs.start_scheduler()
    dask_procs.start_worker("a")
    home = tmp_path / "home"
    env = {**ENV, "DASK_TRIAGE__CLUSTER__RECONNECT_SECONDS": "4"}
    with Serve(home, scheduler=dask_procs.address, env=env, log=tmp_path / "serve.log") as serve:
        serve.start()
        job = submit(home, small_disk, "OP-GONE", "G/1", "normal")
        wait_for("the job to be under way", lambda: peek(home)[job]["bytes_done"] > 0, timeout=120,
                 explain=serve.log_tail)
        dask_procs.kill_scheduler()
        assert serve.proc is not None
        code = serve.proc.wait(timeout=120)
        assert code == 5, serve.log_tail()
        assert "not back after" in serve.log_tail()
    assert peek(home)[job]["state"] == "queued"  # back in line, resumable by the next dispatcher
    actions = [r["action"] for r in audit(home)]
    assert actions.index("scheduler-lost") < actions.index("scheduler-unreachable"), actions
    assert "requeue" in actions
