"""Scale-out: the benchmark device on 1 and then 2 external single-thread `dask worker` processes.

Run on demand (pytest does not collect tests/benchmarks); it prints figures and asserts nothing:

    .venv/bin/python tests/benchmarks/bench_scale.py                 # the 2 GiB device of bench_run.py
    .venv/bin/python tests/benchmarks/bench_scale.py --size-gib 0.5  # a quicker look

For each worker count it starts a real `dask scheduler` and N `dask worker --nthreads 1`
processes (nannies on), warms the page cache and the workers with one run, then times
`run_image` on the device (carving as configured, best of --repeat) and measures what the
README's operators' model needs:

* the speed-up 1 -> 2 workers (target >= 1.8x) and the per-worker rate (bytes of device per second);
* tasks per device (from the task stream) and bytes through the scheduler per device (the
  scheduler process's socket reads and writes, /proc/PID/io rchar/wchar: it does no file I/O
  during a run, so this is its network traffic: task descriptions in, results relayed out,
  heartbeats);
* the control plane's merge: from the last task's end to the tables being written;
* the page-cache read rate of the image (an upper bound for storage; cold storage is slower).
The machine may be shared: every timed window reports the CPU other processes took.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark modules, not the repo root

import corpus  # noqa: E402
import probes  # noqa: E402

GIB, MIB = 1 << 30, 1 << 20
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _io(pid: int) -> int:
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


class External:
    """A scheduler and ``n`` single-thread workers as separate processes, like machines on a network."""

    def __init__(self, n: int, log_dir: Path) -> None:
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
        self.scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                           str(port), "--dashboard-address", "127.0.0.1:0"], **quiet)
        self.workers = [subprocess.Popen([str(BIN / "dask"), "worker", self.address, "--nthreads", "1",
                                          "--name", f"w{i}", "--dashboard-address", "127.0.0.1:0",
                                          "--memory-limit", "0"], **quiet) for i in range(n)]
        self.n = n

    def close(self) -> None:
        for p in [*self.workers, self.scheduler]:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in [*self.workers, self.scheduler]:
            p.wait(timeout=60)


def timed(client, image: Path, out: Path, scheduler_pid: int) -> dict:
    from distributed import get_task_stream

    from triage.pipeline import run_image

    probes.forget_answers(client)  # a new device's cost, not a lookup of the last run's answers
    io0 = _io(scheduler_pid)
    with get_task_stream(client) as ts, probes.Load() as load:
        t0 = time.time()
        res = run_image(image, out, client)
        t_end = time.time()
    last_stop = max((s["stop"] for r in ts.data for s in r.get("startstops", ()) if s["action"] == "compute"),
                    default=t_end)
    return {"wall": load.wall, "load": load, "tasks": len(ts.data), "scheduler_bytes": _io(scheduler_pid) - io0,
            "result_bytes": sum(r.get("nbytes", 0) or 0 for r in ts.data), "merge": max(0.0, t_end - last_stop),
            "entries": res.summary["files"]["entries"]}


def measure(n: int, image: Path, runs: Path, repeat: int) -> list[dict]:
    from distributed import Client

    cluster = External(n, runs)
    try:
        with Client(cluster.address, timeout="60s") as client:
            client.wait_for_workers(n, timeout=120)
            from triage.pipeline import run_image

            run_image(image, runs / f"warm-{n}", client)  # imports, handles, page cache
            out = []
            for i in range(repeat):
                out.append(timed(client, image, runs / f"n{n}-{i}", cluster.scheduler.pid))
                shutil.rmtree(runs / f"n{n}-{i}", ignore_errors=True)
            return out
    finally:
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=2.0, help="device size (default 2, bench_run's device)")
    ap.add_argument("--workdir", type=Path, default=Path("/work/benchdata"), help="cached images and outputs")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per worker count; the best is reported")
    ap.add_argument("--seed", type=int, default=1729)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args(argv)

    spec = corpus.CorpusSpec(args.size_gib, args.seed)
    image, manifest = corpus.build_image(spec, args.workdir)
    size = image.stat().st_size
    runs = args.workdir / "runs" / f"scale-{spec.key}-{time.strftime('%Y%m%dT%H%M%S')}"
    runs.mkdir(parents=True)
    read = probes.read_through(image)
    print(f"device {image} ({size / GIB:.2f} GiB, {manifest['files']} files); page-cache read "
          f"{size / read / MIB:.0f} MiB/s")
    figures: dict = {"device_bytes": size, "page_cache_mib_s": round(size / read / MIB)}
    try:
        for n in (1, 2):
            got = measure(n, image, runs, args.repeat)
            b = min(got, key=lambda r: r["wall"])
            figures[n] = {k: v for k, v in b.items() if k != "load"}
            print(f"{n} worker(s): {b['wall']:.1f} s = {size / b['wall'] / MIB:.1f} MiB/s of device; "
                  f"{b['tasks']} tasks; {b['scheduler_bytes'] / MIB:.2f} MiB through the scheduler "
                  f"(results {b['result_bytes'] / MIB:.2f} MiB); merge {b['merge']:.1f} s  {b['load'].note()}")
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    speedup = figures[1]["wall"] / figures[2]["wall"]
    figures["speedup"] = round(speedup, 2)
    print(f"speed-up 1 -> 2 workers: {speedup:.2f}x (target >= 1.8x; 2 cores shared with other processes here)")
    t = figures[2]
    print(f"per device: {t['tasks']} tasks, {t['tasks'] / (size / GIB):.0f} tasks/GiB; "
          f"{t['scheduler_bytes'] / (size / GIB) / MIB:.2f} MiB through the scheduler per GiB of device")
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
