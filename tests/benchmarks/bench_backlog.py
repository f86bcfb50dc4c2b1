"""Benchmark the device backlog: how fast a critical job gets through, and what concurrency costs.

Run on demand (pytest does not collect tests/benchmarks); it prints figures and
asserts nothing about time:

    /work/venv/bin/python tests/benchmarks/bench_backlog.py --repeat 3
    /work/venv/bin/python tests/benchmarks/bench_backlog.py --repeat 3 --arrive midway     # lows past their hash
    /work/venv/bin/python tests/benchmarks/bench_backlog.py --size-mib 1024 --pictures 1600 --others 4800
    /work/venv/bin/python tests/benchmarks/bench_backlog.py --batch-bytes 16MiB --worker-saturation 1.0

Everything runs on ONE LocalCluster of 2 single-threaded workers started here; each
scenario is a fresh state directory and a real ``triage serve --scheduler ADDR``
subprocess, driven with the real CLI (``submit``), timed from the audit log
(microsecond ``start``/``finish`` records):

  (a) latency of a ``critical`` job, `triage submit` to its finish record: alone (dispatcher
      up, queue empty) versus submitted once 6 ``low`` jobs are all running on the cluster
      (default --max-jobs). Target: behind the lows <= 1.3x alone. Each run also prints how
      the two workers spent the critical job's lifetime (its tasks / other jobs' / idle),
      from a scheduler plugin: a task already running is never interrupted, so the
      overhead is about the length of the low tasks it meets, per phase of the job
      (image hash and partitions, walk, content), and the ratio shrinks as jobs grow.
  (b) throughput of 6 jobs: one after another (--max-jobs 1) versus all at once
      (--max-jobs 6), bytes of evidence per second from the first start to the last
      finish. Target: concurrent >= 90 % of sequential.

The disks (tests/fixtures/backlog.py: an ext4 partition of photos, documents and
binaries, every file unique) are built once and cached in --workdir. The machine may
be shared: every timed window also reports how much CPU other processes took.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark modules, not the repo root

import probes  # noqa: E402
from distributed.diagnostics.plugin import SchedulerPlugin  # noqa: E402

MIB = 1 << 20
LOWS = 6
WORKERS = 2


def _fixtures() -> Any:
    """tests/fixtures as the package ``triage_test_fixtures``, the way tests/conftest.py loads it."""
    name = "triage_test_fixtures"
    if name not in sys.modules:
        init = Path(__file__).resolve().parents[1] / "fixtures" / "__init__.py"
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    from triage_test_fixtures import backlog

    return backlog


backlog = _fixtures()


class TaskClock(SchedulerPlugin):
    """A scheduler plugin: the compute interval of every task that finishes (key, start, stop), so the
    share of the workers a job got can be told apart from time its tasks spent waiting."""

    name = "bench-task-clock"

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[str, float, float]] = []

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if start == "processing" and finish == "memory":
            for ss in kwargs.get("startstops") or ():
                if ss.get("action") == "compute":
                    self.spans.append((str(key), ss["start"], ss["stop"]))

    def shares(self, disk: Path, t0: float, t1: float, workers: int) -> str:
        """Worker time in [t0, t1]: on ``disk``'s tasks, on other tasks, idle."""
        mine = other = 0.0
        for key, a, b in self.spans:
            overlap = max(0.0, min(b, t1) - max(a, t0))
            if str(disk) in key:
                mine += overlap
            else:
                other += overlap
        total = workers * (t1 - t0)
        return (f"of {total:.1f} worker-s: {mine:.1f} on its tasks, {other:.1f} on other jobs' tasks, "
                f"{max(0.0, total - mine - other):.1f} idle")


def epoch(iso_z: str) -> float:
    return dt.datetime.fromisoformat(iso_z.replace("Z", "+00:00")).timestamp()


class Scenario:
    """One fresh state directory and its dispatcher on the shared cluster."""

    count = 0

    def __init__(self, root: Path, name: str, scheduler: str, env: dict[str, str], max_jobs: int | None) -> None:
        Scenario.count += 1
        self.home = root / f"{Scenario.count:02d}-{name}" / "home"
        self.home.mkdir(parents=True)
        self.env = env
        self.serve = backlog.Serve(self.home, scheduler=scheduler, max_jobs=max_jobs, env=env,
                                   log=self.home.parent / "serve.log")

    def submit(self, disk: Path, exhibit: str, priority: str) -> str:
        return backlog.submit(self.home, disk, "BENCH-" + priority.upper(), exhibit, priority)

    def wait(self, ids: list[str], what: str, check, overall=None, timeout: float = 600) -> dict[str, dict]:
        """Poll until ``check(job)`` holds for every job in ``ids`` (and ``overall(jobs)`` for them all)."""

        def poll() -> dict[str, dict] | None:
            if not self.serve.alive():
                raise SystemExit(f"dispatcher exited:\n{self.serve.log_tail()}")
            now = backlog.peek(self.home)
            ok = all(check(now[i]) for i in ids) and (overall is None or overall([now[i] for i in ids]))
            return now if ok else None

        return backlog.wait_for(what, poll, timeout, interval=0.05, explain=self.serve.log_tail)

    def done(self, ids: list[str]) -> dict[str, dict]:
        got = self.wait(ids, "jobs to finish", lambda j: j["state"] in ("done", "failed", "cancelled"))
        bad = [i for i in ids if got[i]["state"] != "done"]
        if bad:
            raise SystemExit(f"jobs {bad} did not finish: {[got[i]['failure'] for i in bad]}")
        return got

    def times(self) -> dict[str, dict[str, float]]:
        """Per job: epoch seconds of its (last) start and its finish, from the audit log."""
        out: dict[str, dict[str, float]] = {}
        for r in backlog.audit(self.home):
            if r["action"] in ("start", "finish"):
                out.setdefault(r["job"], {})[r["action"]] = epoch(r["time"])
        return out

    def close(self) -> None:
        if self.serve.alive():
            self.serve.terminate(timeout=120)
        self.serve.close()


def critical_alone(root: Path, addr: str, env: dict[str, str], disk: Path, warm: Path,
                   clock: TaskClock) -> dict:
    """Seconds from `triage submit` to the finish record, with the dispatcher idle and waiting."""
    s = Scenario(root, "critical-alone", addr, env, None)
    try:
        s.serve.start()
        s.done([s.submit(warm, "warm", "normal")])  # the dispatcher is up and polling
        t0 = time.time()
        job = s.submit(disk, "C/1", "critical")
        s.done([job])
        t1 = s.times()[job]["finish"]
        return {"seconds": t1 - t0, "shares": clock.shares(disk, t0, t1, WORKERS)}
    finally:
        s.close()


def critical_behind_lows(root: Path, addr: str, env: dict[str, str], disk: Path, lows: list[Path],
                         clock: TaskClock, arrive: str) -> dict:
    """``arrive``: 'claimed' = once all lows are running and work is under way; 'midway' = once every
    low has bytes done (its image hash is through: its content and carving tasks are what is left)."""
    s = Scenario(root, f"critical-behind-lows-{arrive}", addr, env, None)
    try:
        ids = [s.submit(d, f"L/{n}", "low") for n, d in enumerate(lows)]
        s.serve.start()
        if arrive == "claimed":
            at = s.wait(ids, "the low jobs to be running, work under way", lambda j: j["state"] == "running",
                        overall=lambda jobs: sum(j["bytes_done"] for j in jobs) > 0)
        else:  # may time out when one low job races to the end before another has a task done
            at = s.wait(ids, "every low job to be midway", lambda j: j["state"] == "running" and j["bytes_done"] > 0)
        t0 = time.time()
        job = s.submit(disk, "C/1", "critical")
        s.done([job])
        t1 = s.times()[job]["finish"]
        now = backlog.peek(s.home)
        progress = {i: (at[i]["bytes_done"] / at[i]["bytes_total"], now[i]["bytes_done"] / now[i]["bytes_total"],
                        now[i]["state"]) for i in ids}
        return {"seconds": t1 - t0, "lows": progress, "shares": clock.shares(disk, t0, t1, WORKERS)}
    finally:
        s.close()  # the lows are not needed past this point


def six_jobs(root: Path, addr: str, env: dict[str, str], disks: list[Path], max_jobs: int) -> dict:
    s = Scenario(root, f"six-max{max_jobs}", addr, env, max_jobs)
    try:
        ids = [s.submit(d, f"T/{n}", "normal") for n, d in enumerate(disks)]
        s.serve.start()
        got = s.done(ids)
        t = s.times()
        first, last = min(t[i]["start"] for i in ids), max(t[i]["finish"] for i in ids)
        nbytes = sum(got[i]["bytes_total"] for i in ids)
        return {"seconds": last - first, "bytes": nbytes, "per_job": [t[i]["finish"] - t[i]["start"] for i in ids]}
    finally:
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/work/benchdata/backlog"))
    ap.add_argument("--size-mib", type=int, default=320, help="size of each disk")
    ap.add_argument("--pictures", type=int, default=400)
    ap.add_argument("--others", type=int, default=1200)
    ap.add_argument("--batch-bytes", default=None, help="content.batch-bytes for the dispatchers (default: config)")
    ap.add_argument("--window-per-worker", default=None, help="dispatcher.window-per-worker (default: config)")
    ap.add_argument("--worker-saturation", type=float, default=None,
                    help="distributed.scheduler.worker-saturation of the cluster (default: dask's, 1.1)")
    ap.add_argument("--arrive", choices=("claimed", "midway"), default="claimed",
                    help="(a): submit the critical job once the lows are claimed and under way, or once every "
                    "low job is past its image hash (default: claimed)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of (a), median reported")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()

    import dask
    from distributed import Client, LocalCluster

    env = {}
    if args.batch_bytes:
        env["DASK_TRIAGE__CONTENT__BATCH_BYTES"] = args.batch_bytes
    if args.window_per_worker:
        env["DASK_TRIAGE__DISPATCHER__WINDOW_PER_WORKER"] = args.window_per_worker
    t0 = time.perf_counter()
    disks = [backlog.build_busy_disk(args.workdir, seed, size_mib=args.size_mib, pictures=args.pictures,
                                     others=args.others, big_mib=(24, 16)) for seed in range(101, 101 + LOWS + 1)]
    warm = backlog.build_tiny_disk(args.workdir, 100)
    print(f"{len(disks)} disks of {args.size_mib} MiB ({args.pictures} photos + {args.others} other files + 2 big "
          f"each) ready in {time.perf_counter() - t0:.1f} s in {args.workdir}")
    for d in disks:
        probes.read_through(d)
    print(f"config overrides: {env or 'none'}")
    runs = args.workdir / "runs" / time.strftime("%Y%m%dT%H%M%S")
    runs.mkdir(parents=True)
    if args.worker_saturation is not None:
        dask.config.set({"distributed.scheduler.worker-saturation": args.worker_saturation})
    print(f"worker-saturation: {dask.config.get('distributed.scheduler.worker-saturation')}")
    cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0")
    client = Client(cluster)
    clock = TaskClock()
    cluster.scheduler.add_plugin(clock, name=TaskClock.name)  # the scheduler runs in this process
    addr = cluster.scheduler_address
    print(f"one cluster for everything: {addr}, {WORKERS} workers x 1 thread; state dirs under {runs}")
    try:
        crit, lows = disks[0], disks[1:]
        with probes.Load() as load:
            critical_alone(runs, addr, env, disks[-1], warm, clock)  # warm the workers (imports, libmagic, caches)
        print(f"warm-up job: {load.wall:.1f} s")

        alone, behind = [], []
        for i in range(args.repeat):
            with probes.Load() as la:
                got = critical_alone(runs, addr, env, crit, warm, clock)
            alone.append(got["seconds"])
            print(f"(a) critical alone           run {i + 1}: {alone[-1]:6.2f} s  {la.note()}")
            print(f"      {got['shares']}")
            with probes.Load() as lb:
                got = critical_behind_lows(runs, addr, env, crit, lows, clock, args.arrive)
            behind.append(got["seconds"])
            print(f"(a) critical behind {LOWS} lows   run {i + 1}: {behind[-1]:6.2f} s  (arriving {args.arrive})  "
                  f"{lb.note()}")
            print(f"      {got['shares']}")
            for j, (then, now, state) in got["lows"].items():
                print(f"      low {j}: {100 * then:5.1f}% done when the critical job arrived, "
                      f"{100 * now:5.1f}% when it finished ({state})")
        a, b = statistics.median(alone), statistics.median(behind)
        print(f"(a) critical behind lows / alone = {b:.2f} / {a:.2f} = {b / a:.2f}x   (target <= 1.3x)")

        if not args.skip_throughput:
            with probes.Load() as ls:
                seq = six_jobs(runs, addr, env, lows, max_jobs=1)
            print(f"(b) 6 jobs one after another (--max-jobs 1): {seq['seconds']:6.2f} s, "
                  f"{seq['bytes'] / MIB / seq['seconds']:.1f} MiB/s; per job "
                  f"{', '.join(f'{x:.1f}' for x in seq['per_job'])} s  {ls.note()}")
            with probes.Load() as lc:
                conc = six_jobs(runs, addr, env, lows, max_jobs=6)
            print(f"(b) 6 jobs at once (--max-jobs 6):           {conc['seconds']:6.2f} s, "
                  f"{conc['bytes'] / MIB / conc['seconds']:.1f} MiB/s; per job "
                  f"{', '.join(f'{x:.1f}' for x in conc['per_job'])} s  {lc.note()}")
            ratio = seq["seconds"] / conc["seconds"]
            print(f"(b) throughput concurrent / sequential = {seq['seconds']:.2f} / {conc['seconds']:.2f} "
                  f"= {100 * ratio:.0f}%   (target >= 90%)")
    finally:
        client.close()
        cluster.close()
    print(f"state directories (queues, audit logs, results, dispatcher logs) kept in {runs}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
