"""Benchmark `triage run` against the hashing limit and fiwalk, on one realistic multi-partition image.

Run on demand (pytest does not collect tests/benchmarks); it prints figures and
asserts nothing about time:

    /work/venv/bin/python tests/benchmarks/bench_run.py                  # 2 GiB image
    /work/venv/bin/python tests/benchmarks/bench_run.py --size-gib 4     # everything doubled
    /work/venv/bin/python tests/benchmarks/bench_run.py --compare-double # worker RSS at N and 2N GiB
    /work/venv/bin/python tests/benchmarks/bench_run.py --profile        # + where a worker's CPU goes

Side by side on the same (page-cache warm) image:
  * `triage run IMAGE -o OUT --workers 2`, cold: a subprocess that starts its own cluster;
  * `run_image` on a warm cluster (after one warming run), best of --repeat, with carving as configured
    (`triage run`'s default) and with carving off (the same work as fiwalk). Warm means imports,
    libmagic databases, image handles and page cache: before each timed run the workers forget the
    types and pHashes they remember by content (probes.forget_answers), so a run costs what a new
    device does, not a lookup of the previous run's answers. Task timings, each
    worker's CPU seconds and peak RSS; and the whole-image md5+sha256 task alone;
  * (a) the physical limit (issue #11): md5+sha1+sha256 over every content byte triage hashed
    (measured: Pool(2) over as many image bytes) plus md5+sha256 over the whole image (measured:
    one thread each), spread over the cores; the image md5 is one sequential chain, so
    limit = max(image md5 CPU, all that hashing CPU / cores);
  * (b) `fiwalk -f -X` (md5+sha1+libmagic, one thread) and `fiwalk -X`;
  * the CPU seconds of every phase (image hash, walk, content read, each hash, typing, pHash,
    carving scan, carvers, merge, write), from the same graph run task by task in this process
    under cProfile (``inline.py``; the profiler inflates Python-heavy phases a little), and the
    read amplification: bytes the workers read from the image / image size.
Targets: triage-warm without carving <= 1.5x the limit; fiwalk -f >= 3x triage-warm; worker RSS
<= 1 GiB and flat when the image doubles. The machine may be shared: every timed window also
reports how much CPU other processes took meanwhile, and the CPU-bound estimates beside the wall
times are what an idle machine would show.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark modules, not the repo root

import corpus  # noqa: E402
import probes  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
WORKERS = 2


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def triage_exe() -> str:
    exe = Path(sys.executable).parent / "triage"
    return str(exe) if exe.exists() else (shutil.which("triage") or "triage")


def run_cold(image: Path, out: Path) -> dict:
    with probes.Load() as load:
        proc = subprocess.run([triage_exe(), "run", str(image), "-o", str(out), "--workers", str(WORKERS),
                               "--no-progress", "--json"], capture_output=True, text=True)
    if proc.returncode not in (0, 4):
        raise SystemExit(f"triage run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout)[0]
    return {"wall": load.wall, "pipeline": summary["seconds"], "exit": proc.returncode, "load": load,
            "cpu": load.ours}


def _wait_idle(client, timeout: float = 30.0) -> None:
    """Until the scheduler holds no tasks, so one run's leftovers never overlap the next."""
    gc.collect()
    deadline = time.monotonic() + timeout
    while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) and time.monotonic() < deadline:
        time.sleep(0.05)


def _cpu(pids: list[int]) -> dict[int, float]:
    import psutil

    return {p: sum(psutil.Process(p).cpu_times()[:2]) for p in pids}


def carve_modes() -> list[str | None]:
    """None = as configured (what `triage run` does), then 'none' if this pipeline can carve at all."""
    from triage.pipeline import run_image

    return [None, "none"] if "carve" in inspect.signature(run_image).parameters else [None]


def timed_run(client, pids: list[int], image: Path, out: Path, carve: str | None) -> dict:
    from distributed import get_task_stream

    from triage.pipeline import run_image

    kw = {} if carve is None else {"carve": carve}
    _wait_idle(client)
    probes.forget_answers(client)  # a new device's cost, not a lookup of the last run's answers
    cpu0 = _cpu(pids)
    read0 = probes.io_read_chars(pids)
    with probes.RssSampler(pids) as rss, get_task_stream(client) as ts, probes.Load() as load:
        t_wall = time.time()
        res = run_image(image, out, client, **kw)
        t_end = time.time()
    cpu1 = _cpu(pids)
    read1 = probes.io_read_chars(pids)
    return {"wall": load.wall, "load": load, "summary": res.summary, "out": res.out,
            "read": sum(read1[p] - read0[p] for p in pids),
            "cpu": {p: cpu1[p] - cpu0[p] for p in pids}, "rss_hwm": rss.hwm(), "rss_sampled": dict(rss.sampled),
            "tasks": probes.summarize_tasks(ts.data, t_wall), "tasks_end": t_end - t_wall}


def run_warm(image: Path, outdir: Path, repeats: int) -> dict:
    """One cluster: a warming run, then ``repeats`` timed runs per carve mode, then the image hash alone."""
    from triage.cluster.connect import connect
    from triage.pipeline import run_image
    from triage.workers.image import identify
    from triage.workers.media import hash_media

    res: dict = {"modes": {}}
    t0 = time.perf_counter()
    with connect(workers=WORKERS) as client:
        res["cluster_start"] = time.perf_counter() - t0
        pids = sorted(client.run(os.getpid).values())
        t0 = time.perf_counter()
        run_image(image, outdir / "warm-0", client)
        res["first"] = time.perf_counter() - t0
        for mode in carve_modes():
            res["modes"][mode] = [timed_run(client, pids, image, outdir / f"warm-{mode or 'default'}-{i}", mode)
                                  for i in range(repeats)]
        ref = identify(image)
        res["media_alone"] = []
        for _ in range(repeats):
            _wait_idle(client)
            with probes.Load() as load:
                client.submit(hash_media, ref, pure=False).result()
            res["media_alone"].append(load)
    return res


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["wall"])


def triage_rows(files_parquet: Path) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(files_parquet, columns=["type", "size", "md5", "sha256", "source"])
    hashed = t.filter(pc.is_valid(t.column("sha256")))
    # fiwalk lists the filesystems' files, not what archives hold: members are compared by neither side
    regular = t.filter(pc.and_(pc.equal(t.column("type"), "r/r"), pc.not_equal(t.column("source"), "archive member")))
    return {"rows": t.num_rows, "hashed": hashed.num_rows, "hashed_bytes": pc.sum(hashed.column("size")).as_py() or 0,
            "regular": regular.num_rows, "regular_bytes": pc.sum(regular.column("size")).as_py() or 0,
            "regular_nonempty": pc.sum(pc.greater(regular.column("size"), 0)).as_py() or 0,
            "md5s": Counter(regular.column("md5").to_pylist())}


def print_warm(label: str, runs: list[dict]) -> None:
    b = best(runs)
    walls = sorted(r["wall"] for r in runs)
    cpu = sum(b["cpu"].values())
    print(f"warm  run_image, {label}: best {b['wall']:.2f} s of {len(runs)} (all: {', '.join(f'{w:.2f}' for w in walls)}); "
          f"workers' CPU {cpu:.2f} s ({', '.join(f'{c:.2f}' for c in b['cpu'].values())}) {b['load'].note()}")
    t = b["tasks"]
    for name, k in sorted(t["kinds"].items(), key=lambda kv: kv[1]["first"]):
        d = sorted(k["durations"])
        print(f"    {name:<11} n={k['n']:<4} sum {k['sum']:6.2f} s  max {k['max']:5.2f}  median {d[len(d) // 2]:6.3f}"
              f"  first start {k['first']:6.2f}  last stop {k['last']:6.2f}")
    for worker, busy in sorted(t["busy"].items()):
        print(f"    worker {worker}: in tasks {busy:6.2f} s of {b['wall']:.2f} s ({100 * busy / b['wall']:.0f}%)")
    last = max((k["last"] for k in t["kinds"].values()), default=0.0)
    print(f"    after the last task: {b['tasks_end'] - last:.2f} s on the client (merge, Parquet, summary)")
    for pid in sorted(b["rss_sampled"]):
        hwm = max((r["rss_hwm"].get(pid) or 0) for r in runs)
        sampled = max(r["rss_sampled"][pid] for r in runs)
        print(f"    worker pid {pid}: peak RSS (VmHWM, reset before each run) {hwm / MIB:6.1f} MiB; "
              f"polled max {sampled / MIB:6.1f} MiB")


def peak_rss(runs: list[dict]) -> int:
    return max(max([v for v in r["rss_hwm"].values() if v] or list(r["rss_sampled"].values())) for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=2.0, help="image size; the corpus scales with it (default 2)")
    ap.add_argument("--workdir", type=Path, default=Path("/work/benchdata"), help="cached images and run outputs")
    ap.add_argument("--keep", action="store_true", help="keep run outputs (triage OUT dirs, fiwalk XML)")
    ap.add_argument("--repeat", type=int, default=3, help="timed warm runs per carve mode; best is reported")
    ap.add_argument("--compare-double", action="store_true", help="also warm runs on a 2x image: RSS flat?")
    ap.add_argument("--profile", action="store_true", help="also print the profile's top functions")
    ap.add_argument("--no-phases", action="store_true", help="skip the in-process run that splits CPU by phase")
    ap.add_argument("--seed", type=int, default=1729)
    args = ap.parse_args(argv)
    probes.compile_package()  # triage's processes start as an installed package's do (see probes)

    spec = corpus.CorpusSpec(args.size_gib, args.seed)
    image, manifest = corpus.build_image(spec, args.workdir)
    runs = args.workdir / "runs" / f"{spec.key}-{time.strftime('%Y%m%dT%H%M%S')}"
    runs.mkdir(parents=True)
    print(f"image {image} ({gib(manifest['disk_bytes'])}; MBR: ext4 + FAT32): {manifest['files']} files, "
          f"{gib(manifest['content_bytes'])} of content, {manifest['files_over_50mib']} over 50 MiB; "
          f"kinds {manifest['kinds']}; build took {manifest['build_seconds']['total']} s (cached)")
    print(f"page cache: whole image read once in {probes.read_through(image):.2f} s (every timing below is warm)")
    try:
        report(args, image, manifest, runs)
    finally:
        if args.keep:
            print(f"outputs kept in {runs}")
        else:
            shutil.rmtree(runs, ignore_errors=True)
    return 0


def report(args: argparse.Namespace, image: Path, manifest: dict, runs: Path) -> None:
    cold = run_cold(image, runs / "cold")
    print(f"cold  `triage run --workers {WORKERS}`: {cold['wall']:.2f} s wall (run_image {cold['pipeline']:.2f} s; "
          f"cluster start/stop + imports {cold['wall'] - cold['pipeline']:.2f} s), {cold['cpu']:.1f} CPU s in all, "
          f"exit {cold['exit']} {cold['load'].note()}")
    w = run_warm(image, runs, args.repeat)
    print(f"cluster start {w['cluster_start']:.2f} s; warming run {w['first']:.2f} s")
    modes = w["modes"]
    for mode, mode_runs in modes.items():
        print_warm("carving as configured" if mode is None else f"carve={mode}", mode_runs)
    default = best(modes[None])
    nocarve = best(modes.get("none", modes[None]))
    tr = triage_rows(nocarve["out"] / "files.parquet")
    media = min(w["media_alone"], key=lambda m: m.wall)
    print(f"  hashed {tr['hashed']} rows, {gib(tr['hashed_bytes'])} ({tr['hashed_bytes']:,} bytes); "
          f"{default['summary']['files']['images_phashed']} images phashed; "
          f"{default['summary']['files'].get('carved', 0)} carved")
    print(f"  whole-image md5+sha256 task alone: {media.wall:.2f} s ({manifest['disk_bytes'] / media.wall / MIB:.0f} MiB/s) "
          f"{media.note()}")
    for label, r in (("carving as configured", default), ("carve=none", nocarve)):
        amp = r["read"] / manifest["disk_bytes"]
        print(f"  read amplification, {label}: workers read {gib(r['read'])} through system calls = {amp:.2f}x "
              f"the image ({amp - 1:.2f}x besides the whole-image hash's one pass)")
    limits = []
    for _ in range(max(args.repeat, 5)):  # cheap, and the most sensitive to other load: take the best of more
        with probes.Load() as load:
            _, cpu = probes.hashing_limit(image, tr["hashed_bytes"], WORKERS)
        limits.append((load.wall, cpu, load))
    lim_wall, lim_cpu, lim_load = min(limits, key=lambda x: x[1])
    img_cpu = probes.image_hash_cpu(image)
    size = manifest["disk_bytes"]
    chain = img_cpu["md5"]
    spread = (lim_cpu + img_cpu["md5"] + img_cpu["sha256"]) / WORKERS
    lim = max(chain, spread)
    print(f"(a) limit: content md5+sha1+sha256 of {tr['hashed_bytes']:,} bytes: {lim_cpu:.2f} CPU s (Pool({WORKERS}) "
          f"wall {lim_wall:.2f} s) {lim_load.note()}")
    print(f"    image md5 {img_cpu['md5']:.2f} CPU s, sha256 {img_cpu['sha256']:.2f}, (sha1 {img_cpu['sha1']:.2f}) "
          f"over {gib(size)}, one thread each")
    print(f"    limit = max(image md5 chain {chain:.2f}, ({lim_cpu:.2f} + {img_cpu['md5']:.2f} + "
          f"{img_cpu['sha256']:.2f}) / {WORKERS} cores = {spread:.2f}) = {lim:.2f} s")
    print(f"    whole-image md5+sha256 task alone (threads: md5 || sha256): {media.wall:.2f} s wall, "
          f"{media.ours:.2f} CPU s; its floor is the md5 chain {chain:.2f} s")
    pic_cpu, pics = picture_floor(image, manifest)
    floor = max(chain, spread + pic_cpu / WORKERS)
    print(f"    + the pictures' decoding every run also owes (each distinct picture pHashed; bench_phash.py's decode "
          f"floor: JPEG entropy decoding at 1/8 scale, PNG inflate): {pics} pictures, {pic_cpu:.2f} CPU s -> "
          f"floor = max({chain:.2f}, {spread:.2f} + {pic_cpu:.2f} / {WORKERS}) = {floor:.2f} s = {floor / lim:.2f}x "
          f"the limit" + (": the 1.5x target is below it" if floor > 1.5 * lim else ""))
    with probes.Load() as lf:
        fw_f = probes.run_fiwalk(image, runs / "fiwalk-f.xml", libmagic=True)
    with probes.Load() as lp:
        fw = probes.run_fiwalk(image, runs / "fiwalk.xml", libmagic=False)
    print(f"(b) fiwalk -f -X: {fw_f.seconds:.2f} s ({fw_f.cpu:.2f} CPU s) {lf.note()}")
    print(f"    fiwalk -X:    {fw.seconds:.2f} s ({fw.cpu:.2f} CPU s) {lp.note()}")
    same = sum((fw_f.md5s & tr["md5s"]).values())
    print(f"counts: triage 'r/r' rows {tr['regular']} ({gib(tr['regular_bytes'])}) vs fiwalk regular fileobjects "
          f"{fw_f.regular} ({gib(fw_f.regular_bytes)}); md5 agree on {same} of {tr['regular_nonempty']} non-empty "
          f"(fiwalk gives empty files no digest); planned files {manifest['files']} + FAT volume label; "
          f"fiwalk fileobjects in all {fw_f.fileobjects} (incl. dirs, '.', '..')")
    print("ratios (best warm runs):")
    for label, r in (("carving as configured", default), ("carve=none", nocarve)):
        print(f"  {label}: triage-warm / limit = {r['wall']:.2f} / {lim:.2f} = {r['wall'] / lim:.2f}x (target <= 1.5x; "
              f"{r['wall'] / floor:.2f}x the floor with the pictures' decoding); "
              f"fiwalk -f / triage-warm = {fw_f.seconds / r['wall']:.2f}x (target >= 3x); "
              f"fiwalk / triage-warm = {fw.seconds / r['wall']:.2f}x; "
              f"workers' CPU / all hashing CPU = {sum(r['cpu'].values()) / (spread * WORKERS):.2f}x")
    print(f"  triage-cold / triage-warm (as configured) = {cold['wall'] / default['wall']:.2f}x")
    print("  CPU-bound estimate for an idle machine (triage: workers' CPU / 2 and never below the image md5 "
          "chain; fiwalk: its CPU; limit: as (a)):")
    lim_idle = lim
    for label, r in (("carving as configured", default), ("carve=none", nocarve)):
        est = max(sum(r["cpu"].values()) / WORKERS, chain)
        print(f"    {label}: triage ~{est:.2f} s; / limit {lim_idle:.2f} s = {est / lim_idle:.2f}x; "
              f"fiwalk -f {fw_f.cpu:.2f} s / triage = {fw_f.cpu / est:.2f}x; fiwalk {fw.cpu:.2f} s / triage = "
              f"{fw.cpu / est:.2f}x")
    all_runs = [r for rs in modes.values() for r in rs]
    print(f"  worker peak RSS {peak_rss(all_runs) / MIB:.0f} MiB (target <= 1024 MiB)")
    if args.compare_double:
        compare_double(args, modes, runs)
    if not args.no_phases:
        print_phases(image, runs, size, {a: c / size for a, c in img_cpu.items()}, lim)
    if args.profile:
        import inline

        for mode in carve_modes():
            print("\n" + inline.profile_run(image, runs / f"profile-{mode or 'default'}", carve=mode))


def picture_floor(image: Path, manifest: dict) -> tuple[float, int]:
    """(CPU s, count) of bench_phash.decode_floor over the image's distinct JPEG and PNG files: the part
    of a pHash no decoder can skip, the same pictures the run pHashes."""
    import hashlib

    import bench_magic
    import bench_phash

    files = bench_magic.image_files(image, [o for o, _ in manifest["layout"].values()])
    pics = list({hashlib.sha256(d).digest(): d for _, d in files
                 if d[:3] == b"\xff\xd8\xff" or d[:8] == b"\x89PNG\r\n\x1a\n"}.values())
    best = float("inf")
    for _ in range(2):
        t0 = time.process_time()
        for d in pics:
            bench_phash.decode_floor(d)
        best = min(best, time.process_time() - t0)
    return best, len(pics)


def print_phases(image: Path, runs: Path, size: int, per_byte: dict[str, float], lim: float) -> None:
    """CPU seconds per phase, the graph run task by task in this process (carving as configured)."""
    import inline

    client, stats, totals = inline.run_inline(image, runs / "phases")
    print(f"\nphases (graph run in-process under cProfile, carving as configured): {totals['cpu']:.2f} CPU s in all "
          f"= {totals['cpu'] / WORKERS:.2f} s on {WORKERS} cores = {totals['cpu'] / WORKERS / lim:.2f}x the limit; "
          f"read amplification {totals['rchar'] / size:.2f}x (bytes read through system calls / image size)")
    for label, cpu in inline.phases(client, stats, per_byte):
        print(f"  {label:<48} {cpu:8.2f} CPU s")
    n_img = stats.stats  # type: ignore[attr-defined]
    calls = {fn: nc for (f, _, fn), (_, nc, _, _, _) in n_img.items()
             if (fn == "phash_file" and "rules/phash.py" in f) or (fn == "from_buffer" and "magic" in f)
             or (fn == "magic_type" and "workers/answers.py" in f)}
    where = {"phash_file": "rules/phash.py", "from_buffer": "magic", "magic_type": "workers/answers.py"}
    for fn, nc in sorted(calls.items()):
        cpu = inline._ct(stats, where[fn], (fn,))
        print(f"  per call: {fn} {nc} calls, {1000 * cpu / max(nc, 1):.3f} CPU ms each"
              + (f" ({nc / max(calls.get('magic_type', 0), 1):.2f} libmagic calls per file typed)"
                 if fn == "from_buffer" else ""))


def compare_double(args: argparse.Namespace, base: dict, runs: Path) -> None:
    """Warm runs on an image twice the size: worker RSS should stay flat, time roughly double."""
    spec2 = corpus.CorpusSpec(args.size_gib * 2, args.seed)
    image2, manifest2 = corpus.build_image(spec2, args.workdir)
    probes.read_through(image2)
    print(f"\ndoubled: {image2} ({gib(manifest2['disk_bytes'])}): {manifest2['files']} files, "
          f"{gib(manifest2['content_bytes'])} of content")
    w2 = run_warm(image2, runs / "double", max(1, args.repeat - 1))
    for mode, mode_runs in w2["modes"].items():
        print_warm(("carving as configured" if mode is None else f"carve={mode}") + f", {spec2.size_gib:g} GiB",
                   mode_runs)
    media2 = min(m.wall for m in w2["media_alone"])
    print(f"  whole-image md5+sha256 task alone: {media2:.2f} s")
    print("side by side:")
    for mode in w2["modes"]:
        r1, r2 = best(base[mode]), best(w2["modes"][mode])
        label = "as configured" if mode is None else f"carve={mode}"
        print(f"  {label:<14} warm wall {args.size_gib:g} GiB {r1['wall']:6.2f} s | {spec2.size_gib:g} GiB "
              f"{r2['wall']:6.2f} s (x{r2['wall'] / r1['wall']:.2f}); workers' CPU {sum(r1['cpu'].values()):6.2f} | "
              f"{sum(r2['cpu'].values()):6.2f} s")
    a = peak_rss([r for rs in base.values() for r in rs])
    b = peak_rss([r for rs in w2["modes"].values() for r in rs])
    print(f"  worker peak RSS: {args.size_gib:g} GiB image {a / MIB:.0f} MiB | {spec2.size_gib:g} GiB image "
          f"{b / MIB:.0f} MiB (x{b / a:.2f} for x2 the image; target: flat, <= 1024 MiB)")


if __name__ == "__main__":
    sys.exit(main())
