"""Faults on real ``dask scheduler`` / ``dask worker`` processes with nannies: every run still completes,
and its table is byte-identical to an undisturbed run's.

* a worker SIGKILLed at a random moment of a run (two moments here; all ten with
  ``TRIAGE_FAULTS_ALL=1``, about three minutes);
* a worker over its memory limit on one task (a crafted picture): its nanny restarts it,
  the scheduler gives up on that task after the configured retries, that file gets a
  status row and the rest of the device is triaged;
* a worker stopped with SIGSTOP past the scheduler's worker TTL: its tasks run elsewhere,
  its late results are not counted twice;
* workers joining and leaving during a backlog of ten jobs.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from triage_test_fixtures.backlog import Serve, build_tiny_disk, peek, submit, wait_for
from triage_test_fixtures.cli import triage_command
from triage_test_fixtures.mkfs import run_tool

from .conftest import ENV, DaskProcs, triage_cli

pytestmark = pytest.mark.slow

#: ten moments a worker is killed at, as fractions of an undisturbed run's wall time (seeded: replayable)
_RNG = random.Random(2026)
MOMENTS = sorted(round(_RNG.uniform(0.15, 0.85), 2) for _ in range(10))
DEFAULT_MOMENTS = MOMENTS[1::7]  # two, early and late; TRIAGE_FAULTS_ALL=1 runs all ten


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    procs = DaskProcs(tmp_path_factory.mktemp("faults-cluster"))
    try:
        procs.start_scheduler()
        procs.nannies = {n: procs.start_worker(n) for n in ("a", "b")}
        yield procs
    finally:
        procs.close()


def _same_tables(out: Path, reference: Path) -> None:
    for name in ("files.parquet", "volumes.parquet"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), f"{out / name} differs from the clean run"


def _start_run(cluster, image: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([*triage_command(), "run", str(image), "-o", str(out), "--scheduler", cluster.address,
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore", **ENV})


@pytest.fixture(scope="module")
def clean_seconds(cluster, small_disk, small_reference, tmp_path_factory) -> float:
    """Wall time of an undisturbed `triage run` on this cluster (the scale the kill moments are taken on).

    Timed on warm workers, as the runs being killed find them: the cluster's first run also pays the
    workers' imports and caches, and a later run finished before the kill moment taken on that time
    (the 0.7 moment then killed nothing and skipped)."""
    work = tmp_path_factory.mktemp("clean")
    for attempt in ("warming", "timed"):
        t0 = time.monotonic()
        run = _start_run(cluster, small_disk, work / attempt)
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        _same_tables(work / attempt, small_reference)
    return time.monotonic() - t0


@pytest.mark.parametrize("moment", MOMENTS if os.environ.get("TRIAGE_FAULTS_ALL") else DEFAULT_MOMENTS)
def test_worker_sigkilled_mid_run_changes_nothing(cluster, small_disk, small_reference, clean_seconds, tmp_path,
                                                  moment):
    victim = "ab"[MOMENTS.index(moment) % 2]
    out = tmp_path / "out"
    run = _start_run(cluster, small_disk, out)
    time.sleep(moment * clean_seconds)
    killed = run.poll() is None
    if killed:
        os.kill(cluster.worker_pid(cluster.nannies[victim]), signal.SIGKILL)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    _same_tables(out, small_reference)
    cluster.wait_for_worker(victim)  # its nanny brought it back for the next moment
    if not killed:
        pytest.skip(f"the run finished before {moment:.0%} of a clean run's time: nothing was killed")


# ---------------------------------------------------------------- memory limit


def _disk_with_a_memory_bomb(work: Path) -> Path:
    """A bare ext4 with a few ordinary files and one PNG of 7000x7000 pixels (under the pixel limit,
    but ~200 MB decoded): bigger than a content batch, so it is a task of its own."""
    from PIL import Image

    src = work / "src"
    src.mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (7000, 7000), (40, 90, 160)).save(buf, "PNG")
    (src / "bomb.png").write_bytes(buf.getvalue() + b"\0" * (2 << 20))  # trailing bytes: over 1 MiB batches
    for i in range(12):
        (src / f"note-{i}.txt").write_text(f"ordinary file {i}\n" * (i + 1))
    disk = work / "bomb.ext4"
    with open(disk, "wb") as fh:
        fh.truncate(16 << 20)
    run_tool(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(disk)])
    return disk


def test_worker_over_its_memory_limit_is_restarted_and_the_file_gets_a_status(fault_dir, tmp_path):
    disk = _disk_with_a_memory_bomb(tmp_path / "bomb")
    procs = DaskProcs(tmp_path)
    try:
        # one retry: the task is tried twice (two nanny restarts), then given a status
        procs.start_scheduler(env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
        for n in ("m1", "m2"):
            procs.start_worker(n, memory_limit="300MB")
        before = {n: procs.worker_pid(p) for n, p in zip(("m1", "m2"), procs.procs[1:])}
        r = triage_cli("run", disk, "-o", tmp_path / "out", "--scheduler", procs.address, "--no-progress",
                       env={**ENV}, timeout=300)
        assert r.returncode == 4, (r.returncode, r.stderr, procs.log("worker-m1.log"))
        rows = {row["path"]: row for row in pq.read_table(tmp_path / "out" / "files.parquet").to_pylist()}
        bomb = rows["bomb.png"]
        assert "KilledWorker" in bomb["status"] and bomb["sha256"] is None, bomb
        for i in range(12):
            assert rows[f"note-{i}.txt"]["status"] == "ok" and rows[f"note-{i}.txt"]["sha256"]
        logs = procs.log("worker-m1.log") + procs.log("worker-m2.log")
        assert "exceeded" in logs and "memory" in logs  # the nannies' own account of the restarts
        after = {n: procs.worker_pid(p) for n, p in zip(("m1", "m2"), procs.procs[1:])}
        assert any(after[n] != before[n] for n in before)  # restarted, not gone
    finally:
        procs.close()


# ---------------------------------------------------------------- a stopped worker


def test_worker_stopped_past_the_ttl_has_its_tasks_run_elsewhere_and_not_counted_twice(small_disk, small_reference,
                                                                                      tmp_path):
    procs = DaskProcs(tmp_path)
    try:
        procs.start_scheduler(env={"DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": "4s"})
        nannies = {n: procs.start_worker(n) for n in ("s1", "s2")}
        out = tmp_path / "out"
        run = subprocess.Popen([*triage_command(), "run", str(small_disk), "-o", str(out), "--scheduler",
                                procs.address, "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONWARNINGS": "ignore", **ENV})
        from distributed import Client

        with Client(procs.address, timeout=30) as watcher:  # stop s1 while it holds a task, however fast the run
            addr = {w["name"]: a for a, w in watcher.scheduler_info()["workers"].items()}["s1"]
            wait_for("s1 to be working on a task", lambda: watcher.processing().get(addr), timeout=120,
                     interval=0.02)
        assert run.poll() is None, "the run ended before the worker could be stopped"
        # the whole machine's worker frozen (nanny too, as a paused VM): a stopped worker alone would be
        # killed and restarted by its nanny once the scheduler drops it, and could never answer late
        os.killpg(nannies["s1"].pid, signal.SIGSTOP)
        try:
            wait_for("the scheduler to drop the stopped worker", lambda: "s1" not in procs.workers(), timeout=60)
        finally:
            os.killpg(nannies["s1"].pid, signal.SIGCONT)  # late results now reach a scheduler not expecting them
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        _same_tables(out, small_reference)  # a result counted twice would be a duplicate row
        assert pq.read_table(out / "files.parquet").num_rows == pq.read_table(
            small_reference / "files.parquet").num_rows
    finally:
        procs.close()


# ---------------------------------------------------------------- churn under a backlog


def test_workers_joining_and_leaving_during_ten_jobs(fault_dir, tmp_path):
    disks = [build_tiny_disk(fault_dir, 100 + i) for i in range(10)]
    ref = fault_dir / "tiny-reference"
    if not ref.exists():
        r = triage_cli("run", *disks, "-o", ref, "--workers", "2", "--no-progress", env=ENV, timeout=600)
        assert r.returncode == 0, r.stderr
    procs = DaskProcs(tmp_path)
    home = tmp_path / "home"
    try:
        procs.start_scheduler()
        nannies = {"c1": procs.start_worker("c1")}
        with Serve(home, scheduler=procs.address, env=ENV, log=tmp_path / "serve.log") as serve:
            serve.start()
            ids = [submit(home, d, f"OP-CHURN-{i % 3}", f"C/{i}", ("low", "normal", "high")[i % 3])
                   for i, d in enumerate(disks)]

            def finished() -> int:
                return sum(j["state"] in ("done", "failed") for j in peek(home).values())

            wait_for("a first job to finish", lambda: finished() >= 1, timeout=120, explain=serve.log_tail)
            nannies["c2"] = procs.start_worker("c2")                       # one joins
            wait_for("a third job to finish", lambda: finished() >= 3, timeout=120, explain=serve.log_tail)
            r = triage_cli("cluster", "retire", "c1", "--scheduler", procs.address)   # one leaves gracefully
            assert r.returncode == 0, r.stderr
            nannies["c3"] = procs.start_worker("c3")                       # another joins
            wait_for("a fifth job to finish", lambda: finished() >= 5, timeout=120, explain=serve.log_tail)
            os.kill(procs.worker_pid(nannies["c2"]), signal.SIGKILL)      # one dies (its nanny restarts it)
            states = wait_for("all ten jobs to finish", lambda: (lambda q: q if all(
                q[j]["state"] in ("done", "failed") for j in ids) else None)(peek(home)), timeout=300,
                explain=serve.log_tail)
    finally:
        procs.close()
    assert [states[j]["state"] for j in ids] == ["done"] * 10, [states[j].get("error") for j in ids]
    for job, disk in zip(ids, disks):
        _same_tables(home / "jobs" / job / "results", ref / disk.name)
