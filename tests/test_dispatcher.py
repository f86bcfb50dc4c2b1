"""The device backlog end to end: the real ``triage serve`` (its own LocalCluster) and the job verbs, as processes.

What the examiner relies on: jobs run most urgent case first and first come first
served within a priority; a ``critical`` job overtakes running ``low`` jobs at task
granularity; a priority change bites on queued and running jobs; a cancel is
prompt and leaves no partial results; a dispatcher killed or stopped mid-way
resumes every job from its checkpoints to results byte-identical to an
uninterrupted run, with the restart in a verifiable audit log; one bad image fails
alone. Orders and times are read from the audit log (``triage audit show --json``,
microsecond times, ``seq`` a total order) and ``triage status --json``.

The disks (tests/fixtures/backlog.py) hold about 3,300 files each, so a job keeps two
workers busy for seconds; content batches are made 8 MiB (the config's environment
override, applied to the uninterrupted reference run too) so that a job of a 256 MiB
disk has a few dozen tasks, as a large device has with the default 64 MiB.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from triage_test_fixtures import mkfs
from triage_test_fixtures.backlog import (Serve, audit, build_busy_disk, build_tiny_disk, jobs, peek, submit,
                                          triage, wait_for)

pytestmark = pytest.mark.slow

#: the configuration every dispatcher and the reference run get (see the module docstring)
ENV = {"DASK_TRIAGE__CONTENT__BATCH_BYTES": "8MiB"}
TERMINAL = ("done", "failed", "cancelled")
DONE_WITHIN = 240.0  # seconds for a whole scenario's jobs: generous, the machine may be shared


@pytest.fixture(scope="session")
def backlog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in ("mke2fs", "sfdisk") if shutil.which(t, path=mkfs.TOOL_ENV["PATH"]) is None]
    if missing:
        pytest.skip(f"tool(s) not installed: {', '.join(missing)}")
    return tmp_path_factory.mktemp("backlog")


@pytest.fixture(scope="session")
def disks(backlog_dir: Path, backlog_disks: Path) -> list[Path]:
    """Three distinct 256 MiB disks (different files, so a resumed job reading another's checkpoints shows).

    Thousands of small files: per-file work (walk, type, hash, photos' perceptual hash) dominates a
    job, not the whole-image hash, so orders decided at task granularity have seconds of margin."""
    return [build_busy_disk(backlog_disks, seed, pictures=300, others=3000, big_mib=(8,)) for seed in (1, 2, 3)]


@pytest.fixture(scope="session")
def tiny(backlog_dir: Path) -> Path:
    return build_tiny_disk(backlog_dir, 7)


@pytest.fixture(scope="session")
def reference(disks: list[Path], backlog_dir: Path) -> dict[Path, Path]:
    """Each disk triaged uninterrupted by ``triage run`` (one cluster for the three): disk -> result dir."""
    out = backlog_dir / "reference"
    triage(None, "run", *disks, "-o", out, "--workers", "2", "--no-progress", env=ENV,
           timeout=600)
    return {d: out / d.name for d in disks}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    """``serve(home, max_jobs=N)``: a dispatcher, killed with its cluster at teardown whatever happened."""
    made: list[Serve] = []

    def make(home: Path, max_jobs: int | None = None) -> Serve:
        s = Serve(home, workers=2, max_jobs=max_jobs, env=ENV, log=tmp_path / f"serve-{len(made)}.log")
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


# ---------------------------------------------------------------- helpers


def wait_done(home: Path, ids: list[str], d: Serve, timeout: float = DONE_WITHIN) -> dict[str, dict[str, Any]]:
    """Poll until every job in ``ids`` is finished one way or another; the dispatcher must stay up."""

    def check() -> dict[str, dict[str, Any]] | None:
        if not d.alive():
            raise AssertionError(f"the dispatcher exited ({d.proc.returncode}):\n{d.log_tail()}")
        now = peek(home)
        return now if all(now[i]["state"] in TERMINAL for i in ids) else None

    return wait_for(f"jobs {', '.join(ids)} to finish", check, timeout, interval=0.3,
                    explain=lambda: _explain(home, d))


def wait_under_way(home: Path, ids: list[str], d: Serve, timeout: float = 120,
                   share: float = 0.0) -> dict[str, dict[str, Any]]:
    """Poll until every job in ``ids`` is running with some bytes done (more than ``share`` of its
    total, once its content is planned) and some left."""

    def going(j: dict[str, Any]) -> bool:
        planned = j["bytes_total"] > sum(j["image_sizes"])  # its walk is done: content and carving counted
        return (j["state"] == "running" and 0 < j["bytes_done"] < j["bytes_total"]
                and (share == 0 or planned and j["bytes_done"] > share * j["bytes_total"]))

    def check() -> dict[str, dict[str, Any]] | None:
        if not d.alive():
            raise AssertionError(f"the dispatcher exited ({d.proc.returncode}):\n{d.log_tail()}")
        now = peek(home)
        return now if all(going(now[i]) for i in ids) else None

    return wait_for(f"jobs {', '.join(ids)} to be under way", check, timeout, interval=0.1,
                    explain=lambda: _explain(home, d))


def _explain(home: Path, d: Serve) -> str:
    rows = [f"  {j['id']} {j['priority']:8} {j['state']:9} {j['bytes_done']}/{j['bytes_total']} {j['failure'] or ''}"
            for j in peek(home).values()]
    return "queue:\n" + "\n".join(rows) + f"\ndispatcher log:\n{d.log_tail()}"


def actions(records: list[dict[str, Any]], action: str) -> list[str]:
    """The jobs of the records with ``action``, in log order."""
    return [r["job"] for r in records if r["action"] == action]


def assert_audit_intact(home: Path) -> None:
    r = triage(home, "audit", "verify", check=False)
    assert r.returncode == 0 and r.stdout.startswith("audit log OK"), r.stdout + r.stderr


def result_files(job: dict[str, Any]) -> list[str]:
    """Everything in a job's results directory (hidden staging leftovers included)."""
    if not job["results_dir"]:
        return []
    rdir = Path(job["results_dir"])
    return sorted(p.name for p in rdir.iterdir()) if rdir.is_dir() else []


# ---------------------------------------------------------------- 1. priority order


def test_jobs_run_in_priority_order_and_first_come_first_served_within_one(home, tiny, serve):
    submitted = [("low", "L1"), ("normal", "N1"), ("high", "H1"), ("critical", "C1"),
                 ("low", "L2"), ("normal", "N2"), ("high", "H2"), ("critical", "C2")]
    ids = {ex: submit(home, tiny, "OP-ORDER", ex, prio) for prio, ex in submitted}
    d = serve(home, max_jobs=1).start()
    wait_done(home, list(ids.values()), d)

    expected = [ids[ex] for ex in ("C1", "C2", "H1", "H2", "N1", "N2", "L1", "L2")]
    records = audit(home)
    assert actions(records, "finish") == expected
    # one job at a time: each starts only once the one before it has finished
    runs = [(r["action"], r["job"]) for r in records if r["action"] in ("start", "finish")]
    assert runs == [(a, j) for j in expected for a in ("start", "finish")]
    status = jobs(home)
    assert all(status[j]["state"] == "done" and status[j]["attempts"] == 1 for j in expected)
    finished = [status[j]["finished"] for j in expected]  # ISO 8601 seconds: ordered, maybe equal
    assert finished == sorted(finished)
    assert_audit_intact(home)


# ---------------------------------------------------------------- 2. preemption at task granularity


def test_a_critical_job_overtakes_the_low_jobs_already_running(home, disks, serve):
    lows = [submit(home, disk, "OP-BULK", f"B/{n}", "low") for n, disk in enumerate(disks)]
    d = serve(home, max_jobs=4).start()
    before = wait_under_way(home, lows, d)
    crit = submit(home, disks[0], "OP-URGENT", "U/1", "critical")
    after = wait_done(home, [crit, *lows], d)

    assert all(after[j]["state"] == "done" for j in (crit, *lows)), _explain(home, d)
    finish_order = actions(audit(home), "finish")
    assert finish_order.index(crit) == 0, (
        f"the critical job finished after low jobs that were running when it arrived: {finish_order}; "
        f"their progress then: { {j: before[j]['bytes_done'] / before[j]['bytes_total'] for j in lows} }")
    # it was claimed at once (max-jobs leaves room; the queue is polled every 0.5 s), not in the slot a
    # finished low job freed: its start comes before every low job's finish in the audit log (an order,
    # not a time, so a loaded machine cannot fail it)
    records = audit(home)
    order = [(r["action"], r.get("job")) for r in records]
    assert order.index(("start", crit)) < min(order.index(("finish", j)) for j in lows), order


# ---------------------------------------------------------------- 3. live re-prioritisation


def test_prioritize_moves_a_queued_job_and_speeds_up_a_running_one(home, disks, tiny, serve):
    # three jobs of equal size (the disks differ only in their seed), all low; the last one gets raised
    early = [submit(home, disk, f"OP-EARLY-{n}", f"E/{n}", "low") for n, disk in enumerate(disks[:2])]
    raised = submit(home, disks[2], "OP-RAISED", "R/1", "low")
    waiting = submit(home, tiny, "OP-WAIT", "W/1", "low")    # queued: max-jobs is 3
    jumper = submit(home, tiny, "OP-JUMP", "J/1", "low")     # queued behind `waiting`
    d = serve(home, max_jobs=3).start()
    wait_for("the three big jobs to be claimed",
             lambda: all(peek(home)[j]["state"] == "running" for j in (*early, raised)), 120, interval=0.1,
             explain=lambda: _explain(home, d))
    r = triage(home, "prioritize", "OP-RAISED", "--priority", "critical", "--json")   # by case: a running job
    assert [(j["id"], j["state"], j["priority"]) for j in json.loads(r.stdout)] == [(raised, "running", "critical")]
    r = triage(home, "prioritize", jumper, "--priority", "critical", "--json")         # by id: a queued job
    [moved] = json.loads(r.stdout)
    assert (moved["state"], moved["priority"], moved["position"]) == ("queued", "critical", 1)

    every = [*early, raised, waiting, jumper]
    after = wait_done(home, every, d)
    assert all(after[j]["state"] == "done" for j in every), _explain(home, d)
    records = audit(home)
    finished, started = actions(records, "finish"), actions(records, "start")
    # without the raise each big job gets a third of the workers and `raised`, last in line, ends last
    assert finished.index(raised) == 0, f"the raised job did not overtake the earlier ones: {finished}"
    assert started.index(jumper) < started.index(waiting), f"the raised queued job did not move up: {started}"
    escalations = {r["job"]: r["details"] for r in records if r["action"] == "escalate"}
    assert {j: (e["from"], e["to"]) for j, e in escalations.items()} == {
        raised: ("low", "critical"), jumper: ("low", "critical")}
    assert_audit_intact(home)


# ---------------------------------------------------------------- 4. cancel


def test_cancel_a_queued_job_at_once_and_a_running_one_within_seconds(home, disks, tiny, serve):
    doomed = submit(home, disks[0], "OP-C", "C/1", "normal")
    kept = submit(home, disks[1], "OP-C", "C/2", "normal")
    queued = submit(home, disks[2], "OP-C", "C/3", "normal")
    d = serve(home, max_jobs=2).start()
    wait_under_way(home, [doomed, kept], d)

    r = triage(home, "cancel", queued, "--json")
    assert [j["state"] for j in json.loads(r.stdout)] == ["cancelled"]
    assert peek(home)[queued]["state"] == "cancelled"
    r = triage(home, "cancel", doomed, "--json")
    [req] = json.loads(r.stdout)
    assert req["state"] == "running" and req["cancel_requested"]
    t0 = time.monotonic()
    wait_for("the running job to be cancelled", lambda: peek(home)[doomed]["state"] == "cancelled", 15,
             interval=0.1, explain=lambda: _explain(home, d))
    took = time.monotonic() - t0
    later = submit(home, tiny, "OP-C", "C/4", "low")  # the dispatcher goes on working the backlog
    after = wait_done(home, [kept, later], d)

    assert took < 10, f"cancel of a running job took {took:.1f} s"
    assert (after[kept]["state"], after[later]["state"]) == ("done", "done"), _explain(home, d)
    gone = result_files(after[doomed])
    assert not gone, f"a cancelled job left results behind: {gone}"
    work = home / "jobs" / doomed / "work"
    assert not work.exists(), f"a cancelled job left its checkpoints (file listing, hashes): {sorted(work.rglob('*'))}"
    assert set(result_files(after[kept])) >= {"files.parquet", "volumes.parquet", "image.json", "summary.json"}
    r = triage(home, "results", doomed, check=False)
    assert r.returncode == 3 and "cancelled" in r.stderr
    records = audit(home)
    assert queued not in actions(records, "start")
    # the examiner's two cancels and the dispatcher's stop of the running job (which may be logged
    # a moment before the CLI's own record of the request: the queue changes first)
    cancels = [(r["job"], r["details"]) for r in records if r["action"] == "cancel"]
    assert sorted(j for j, _ in cancels) == sorted([queued, doomed, doomed])
    assert [d["when"] for j, d in cancels if "when" in d] == ["running"]
    assert doomed not in actions(records, "finish")
    assert_audit_intact(home)


# ---------------------------------------------------------------- 5. kill or stop, then restart


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_dispatcher_killed_or_stopped_mid_way_resumes_every_job_to_identical_results(
        how, home, disks, tiny, reference, serve):
    running = [submit(home, disk, "OP-R", f"R/{n}", "normal") for n, disk in enumerate(disks)]
    queued = submit(home, tiny, "OP-R", "R/tiny", "low")  # max-jobs 3: still queued at the kill
    first = serve(home, max_jobs=3).start()
    at_kill = wait_under_way(home, running, first, share=0.2)  # past the image hash, into the content
    if how == "SIGKILL":
        first.kill_group(signal.SIGKILL)  # the dispatcher and its cluster's workers, at once
    else:
        assert first.terminate(timeout=60) == 0, first.log_tail()
        wait_for("the stopped dispatcher's cluster workers to exit", lambda: not first.group_alive(), 30)
    orphaned = peek(home)
    # killed: its jobs are orphans until a dispatcher starts; stopped: it put them back in line itself
    left = "running" if how == "SIGKILL" else "queued"
    assert [orphaned[j]["state"] for j in running] == [left] * 3 and orphaned[queued]["state"] == "queued"

    second = serve(home, max_jobs=3).start()
    after = wait_done(home, [*running, queued], second)

    assert sorted(after) == sorted([*running, queued]), "a job was added or lost"
    assert all(after[j]["state"] == "done" for j in after), _explain(home, second)
    assert [after[j]["attempts"] for j in (*running, queued)] == [2, 2, 2, 1]
    records = audit(home)
    requeued = [r for r in records if r["action"] == "requeue"]
    assert sorted(r["job"] for r in requeued) == sorted(running)
    reason = "dispatcher restarted" if how == "SIGKILL" else "dispatcher stopped"
    assert all(r["details"]["reason"] == reason for r in requeued)
    assert sorted(actions(records, "finish")) == sorted([*running, queued]), "a job finished twice or never"
    for j in running:
        starts = [r["details"] for r in records if r["action"] == "start" and r["job"] == j]
        assert [s["attempt"] for s in starts] == [1, 2]
        assert starts[1]["resumed_bytes"] >= at_kill[j]["bytes_done"] > 0, (j, starts, at_kill[j])
    assert_audit_intact(home)

    for j, disk in zip(running, disks):
        out, ref = Path(after[j]["results_dir"]), reference[disk]
        for name in ("files.parquet", "volumes.parquet", "image.json"):
            assert (out / name).read_bytes() == (ref / name).read_bytes(), f"{j}: {name} differs from {ref / name}"
        files = pq.read_table(out / "files.parquet")
        keys = list(zip(*(files.column(c).to_pylist() for c in ("partition", "inode", "attr_type", "attr_id", "path"))))
        assert len(keys) == len(set(keys)), f"{j}: duplicate rows in files.parquet"
        assert result_files(after[j]) == ["files.parquet", "image.json", "report.case.jsonld", "report.csv",
                                          "report.dfxml", "report.html", "summary.json", "volumes.parquet"]
        assert not (home / "jobs" / j / "work").exists(), f"{j}: checkpoints left after the job finished"


def test_a_cancel_asked_for_while_the_dispatcher_was_down_is_applied_and_audited_at_restart(
        home, disks, tiny, serve):
    job = submit(home, disks[0], "OP-K", "K/1", "normal")
    first = serve(home, max_jobs=1).start()
    wait_under_way(home, [job], first)
    first.kill_group(signal.SIGKILL)
    r = triage(home, "cancel", job, "--json")  # still 'running' in the queue: a request for the dispatcher
    assert [j["cancel_requested"] for j in json.loads(r.stdout)] == [True]
    later = submit(home, tiny, "OP-K", "K/2", "low")

    second = serve(home, max_jobs=1).start()
    after = wait_done(home, [job, later], second)
    assert (after[job]["state"], after[later]["state"]) == ("cancelled", "done")
    records = audit(home, job)
    assert [r["action"] for r in records] == ["submit", "start", "cancel", "cancel"], (
        "the restart must record the cancel it carried out (and no requeue of a job it did not requeue): "
        f"{[(r['action'], r['details']) for r in records]}")
    assert not result_files(after[job])
    assert not (home / "jobs" / job / "work").exists()
    assert_audit_intact(home)


# ---------------------------------------------------------------- 6. a failing job


def test_a_job_whose_image_went_away_or_turned_to_garbage_fails_alone(home, tiny, tmp_path, serve):
    gone, garbage = tmp_path / "gone.ext4", tmp_path / "garbage.ext4"
    shutil.copyfile(tiny, gone)
    shutil.copyfile(tiny, garbage)
    bad_missing = submit(home, gone, "OP-F", "F/1", "critical")
    bad_garbage = submit(home, garbage, "OP-F", "F/2", "high")
    good = submit(home, tiny, "OP-F", "F/3", "low")
    gone.unlink()
    garbage.write_bytes(random.Random(6).randbytes(1 << 20))  # after submit: identify() passed then
    d = serve(home, max_jobs=1).start()
    after = wait_done(home, [bad_missing, bad_garbage, good], d)

    assert [after[j]["state"] for j in (bad_missing, bad_garbage, good)] == ["failed", "failed", "done"]
    assert str(gone) in after[bad_missing]["failure"] and "no such file" in after[bad_missing]["failure"]
    assert str(garbage) in after[bad_garbage]["failure"]
    for j in (bad_missing, bad_garbage):
        assert "\n" not in after[j]["failure"]
        [fail] = [r for r in audit(home, j) if r["action"] == "fail"]
        assert fail["details"]["reason"] == after[j]["failure"]
        r = triage(home, "results", j, check=False)
        assert r.returncode == 3 and after[j]["failure"] in r.stderr
        assert not result_files(after[j])
    assert d.alive(), "a bad image stopped the dispatcher"
    assert_audit_intact(home)
