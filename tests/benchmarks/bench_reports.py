"""Benchmark ranking and the four reports against the run they follow (target: together <= 10 % of its wall time).

Run on demand (pytest does not collect tests/benchmarks); prints figures, asserts nothing:

    .venv/bin/python tests/benchmarks/bench_reports.py                 # the 2 GiB benchmark device
    .venv/bin/python tests/benchmarks/bench_reports.py --size-gib 0.5  # a quicker look
    .venv/bin/python tests/benchmarks/bench_reports.py --results OUT   # an existing result, no run

The device is bench_run.py's (tests/benchmarks/corpus.py, cached in --workdir). One cold
`triage run --workers 2 --no-reports` gives the run's wall time (its merge already ranks);
then ranking (`triage rank`'s work: read, rank, write) and each report format run in a
fresh subprocess each, so every step's wall time and peak RSS (ru_maxrss, minus the
interpreter's own after imports) are its own. The machine may be shared: figures are of
one run on whatever load there was.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark modules, not the repo root

GIB, MIB = 1 << 30, 1 << 20
FORMATS = ("html", "csv", "dfxml", "case")


def _rss() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not carry the parent's peak across fork+exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def step(kind: str, out: Path, dest: Path) -> dict:
    """One measured step, in this (fresh) process."""
    from triage.ranking import rerank
    from triage.reports import write_reports

    import pyarrow  # noqa: F401 - the libraries every step loads count as base, not as the step's memory

    base = _rss()
    t0 = time.perf_counter()
    if kind == "rank":
        rerank(out)
        size = (out / "files.parquet").stat().st_size
    else:
        [path] = write_reports(out, [kind], dest=dest)
        size = path.stat().st_size
    return {"step": kind, "seconds": time.perf_counter() - t0, "peak_rss": _rss(), "base_rss": base, "bytes": size}


def measure(kind: str, out: Path, dest: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--step", kind, str(out), str(dest)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"step {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_all(out: Path) -> float:
    dest = out / "bench-reports"
    dest.mkdir(exist_ok=True)
    total = 0.0
    print(f"{'step':<6} {'seconds':>8} {'output':>12} {'peak RSS':>10} {'(over base)':>12}")
    for kind in ("rank", *FORMATS):
        m = measure(kind, out, dest)
        total += m["seconds"]
        print(f"{kind:<6} {m['seconds']:>8.2f} {m['bytes'] / MIB:>8.1f} MiB {m['peak_rss'] / MIB:>7.0f} MiB "
              f"{(m['peak_rss'] - m['base_rss']) / MIB:>9.0f} MiB")
    return total


def tiled(out: Path, rows: int) -> Path:
    """A copy of ``out`` whose files table repeats its rows (paths made unique) up to ``rows``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from triage.store import write_parquet

    big = out.with_name(out.name + f"-x{rows}")
    shutil.rmtree(big, ignore_errors=True)
    shutil.copytree(out, big, ignore=shutil.ignore_patterns("bench-reports"))
    table = pq.read_table(out / "files.parquet")
    parts, n, k = [], 0, 0
    while n < rows:
        piece = table.slice(0, min(table.num_rows, rows - n))
        path = pc.binary_join_element_wise(pa.scalar(f"copy{k}"), piece.column("path"), "/")
        parts.append(piece.set_column(piece.schema.get_field_index("path"), "path", path))
        n, k = n + piece.num_rows, k + 1
    write_parquet(pa.concat_tables(parts).combine_chunks(), big / "files.parquet")
    return big


def cold_run(image: Path, out: Path) -> tuple[float, dict]:
    exe = Path(sys.executable).with_name("triage")
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), "run", str(image), "-o", str(out), "--workers", "2", "--no-progress",
                           "--no-reports", "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 4):
        raise SystemExit(f"triage run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=2.0, help="benchmark device size (default 2)")
    ap.add_argument("--workdir", type=Path, default=Path("/work/benchdata"), help="cached images and outputs")
    ap.add_argument("--seed", type=int, default=1729)
    ap.add_argument("--results", type=Path, default=None, help="measure on this existing result (no run)")
    ap.add_argument("--rows", type=int, default=0, metavar="N",
                    help="also measure on a copy of the result tiled to N rows (memory must stay flat)")
    ap.add_argument("--keep", action="store_true", help="keep the run's results folder (to measure again)")
    ap.add_argument("--step", nargs=3, metavar=("KIND", "OUT", "DEST"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:
        print(json.dumps(step(args.step[0], Path(args.step[1]), Path(args.step[2]))))
        return 0
    run_wall = None
    if args.results is None:
        import corpus

        spec = corpus.CorpusSpec(args.size_gib, args.seed)
        image, manifest = corpus.build_image(spec, args.workdir)
        print(f"device {image} ({manifest['disk_bytes'] / GIB:.2f} GiB, {manifest['files']} files)")
        out = args.workdir / "runs" / f"reports-{spec.key}-{time.strftime('%Y%m%dT%H%M%S')}"
        shutil.rmtree(out, ignore_errors=True)
        run_wall, summary = cold_run(image, out)
        print(f"triage run --workers 2 (cold, ranking included): {run_wall:.1f} s wall, "
              f"{summary['files']['entries']:,} rows; device {summary['ranking']['tier']} "
              f"{summary['ranking']['score']}")
    else:
        out = args.results
    total = measure_all(out)
    print(f"ranking + 4 reports: {total:.1f} s", end="")
    if run_wall:
        print(f" = {100 * total / run_wall:.1f} % of the run's {run_wall:.1f} s (target <= 10 %)")
    else:
        print()
    if args.rows:
        big = tiled(out, args.rows)
        print(f"the same result tiled to {args.rows:,} rows:")
        total = measure_all(big)
        print(f"ranking + 4 reports: {total:.1f} s")
        shutil.rmtree(big, ignore_errors=True)
    if args.results is None and not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    elif args.results is None:
        print(f"results kept in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
