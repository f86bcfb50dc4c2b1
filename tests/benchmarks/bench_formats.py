"""Benchmark: what a container costs. `run_image` on the benchmark device as raw, VMDK, VHDX, QCOW2 and E01.

Run on demand (pytest does not collect tests/benchmarks); prints figures, asserts nothing about time:

    .venv/bin/python tests/benchmarks/bench_formats.py                  # the 2 GiB device of bench_run.py
    .venv/bin/python tests/benchmarks/bench_formats.py --size-gib 0.25  # a quick look
    .venv/bin/python tests/benchmarks/bench_formats.py --size-gib 0.25 --formats e01 --repeat 1  # one format
    .venv/bin/python tests/benchmarks/bench_formats.py --size-gib 0.25 --inline   # + CPU per task kind

The device is bench_run.py's (corpus.build_image, cached in --workdir); each container is made from it by
the tool that writes it in the field (qemu-img convert; ewfacquire, fast compression) and cached beside it.
One warm cluster; for each format: the whole run (carving as configured, best of --repeat) and the image
hash task alone (the one sequential task, where decoding shows most). Target: each <= 1.2x raw.
Every timed window also reports the CPU seconds this benchmark's processes took (client + workers: what an
idle machine would spend, whatever the load) and the CPU other processes took meanwhile (the machine may be
shared), and the workers' peak RSS over all runs (budget: 1 GiB, flat as the image grows). The repeats are
rounds over every format in turn, so a change in the machine's load falls on all of them alike.
``--inline`` also runs each format's graph task by task in this process (inline.py, no cluster) and prints
the CPU seconds per task kind: where a container's extra time goes, unaffected by other load's timing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402
import probes  # noqa: E402

WORKERS = 2
#: name -> (file suffix, command making it from RAW into OUT)
CONTAINERS = {
    "vmdk": (".vmdk", ["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse",
                       "{raw}", "{out}"]),
    "vhdx": (".vhdx", ["qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic", "{raw}", "{out}"]),
    "qcow2": (".qcow2", ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "{raw}", "{out}"]),
    "e01": (".E01", ["ewfacquire", "-u", "-q", "-t", "{stem}", "-f", "encase6", "-c", "fast", "-S", "8GiB",
                     "{raw}"]),
}


def make_containers(raw: Path, only: list[str] | None = None) -> dict[str, Path]:
    out = {"raw": raw}
    for name, (suffix, cmd) in CONTAINERS.items():
        if only and name not in only:
            continue
        target = raw.with_name(raw.stem + "-bench" + suffix)
        if not target.exists():
            t0 = time.perf_counter()
            args = [c.format(raw=raw, out=target, stem=target.with_suffix("")) for c in cmd]
            subprocess.run(args, check=True, capture_output=True, stdin=subprocess.DEVNULL)
            print(f"  made {target.name} ({target.stat().st_size / (1 << 20):.0f} MiB) in "
                  f"{time.perf_counter() - t0:.1f} s")
        out[name] = target
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=2.0)
    ap.add_argument("--workdir", type=Path, default=Path("/work/benchdata"))
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per format; the best is reported")
    ap.add_argument("--seed", type=int, default=1729)
    ap.add_argument("--formats", nargs="*", choices=sorted(CONTAINERS), default=None,
                    help="containers to compare with raw (default: all)")
    ap.add_argument("--inline", action="store_true", help="also: CPU seconds per task kind, each format run inline")
    args = ap.parse_args(argv)

    from triage.cluster.connect import connect
    from triage.pipeline import run_image
    from triage.workers.image import identify
    from triage.workers.media import hash_media

    spec = corpus.CorpusSpec(args.size_gib, args.seed)
    raw, manifest = corpus.build_image(spec, args.workdir)
    print(f"device {raw} ({manifest['disk_bytes'] / (1 << 30):.2f} GiB, {manifest['files']} files)")
    images = make_containers(raw, args.formats)
    for p in images.values():
        probes.read_through(p)  # page cache warm for every format alike
    runs = args.workdir / "runs" / f"formats-{spec.key}-{time.strftime('%Y%m%dT%H%M%S')}"
    results: dict[str, dict] = {}
    with connect(workers=WORKERS) as client:
        pids = list(client.run(os.getpid).values())
        run_image(raw, runs / "warm", client)
        per: dict[str, dict[str, list]] = {n: {"loads": [], "mcpu": [], "media": []} for n in images}
        with probes.RssSampler(pids) as rss:  # peak over all runs (the formats share the workers)
            for i in range(args.repeat):  # rounds over every format, so a change in the machine's load hits all
                for name, image in images.items():
                    probes.forget_answers(client)  # every format pays typing and pHash, as a new device does
                    with probes.Load() as load:
                        res = run_image(image, runs / f"{name}-{i}", client)
                    ref = identify(image)
                    with probes.Load() as mload:
                        client.submit(hash_media, ref, pure=False).result()
                    r = per[name]
                    r["loads"].append(load)
                    r["media"].append(mload.wall)
                    r["mcpu"].append(mload.ours)
                    r["summary"] = res.summary
        peak = max([v for v in rss.hwm().values() if v] + list(rss.sampled.values()), default=0)
        for name, r in per.items():
            best = min(r["loads"], key=lambda x: x.wall)
            results[name] = {"wall": best.wall, "media": min(r["media"]), "load": best,
                             "cpu": min(x.ours for x in r["loads"]), "mcpu": min(r["mcpu"]), "rss": peak,
                             "sha256": r["summary"]["image"]["sha256"], "entries": r["summary"]["files"]["entries"]}
    base = results["raw"]
    print(f"\n{'format':8} {'run s':>7} {'x raw':>6} {'CPU s':>7} {'x raw':>6} {'hash s':>7} {'x raw':>6} "
          f"{'CPU s':>6} {'x raw':>6} {'RSS MiB':>8}  rows  same image hash")
    for name, r in results.items():
        print(f"{name:8} {r['wall']:7.2f} {r['wall'] / base['wall']:6.2f} {r['cpu']:7.2f} {r['cpu'] / base['cpu']:6.2f} "
              f"{r['media']:7.2f} {r['media'] / base['media']:6.2f} {r['mcpu']:6.2f} {r['mcpu'] / base['mcpu']:6.2f} "
              f"{r['rss'] / (1 << 20):8.0f}  {r['entries']:<5} {r['sha256'] == base['sha256']}   {r['load'].note()}")
    print("run s: best wall of --repeat runs; CPU s: least CPU seconds of this benchmark's processes in a run "
          "(workers + client, all threads); hash s / CPU s: the image hash task alone. "
          "RSS: the workers' peak over all runs.")
    print("target: each container's run <= 1.2x raw (wall)")
    if args.inline:
        print_inline(images, runs)
    return 0


def print_inline(images: dict[str, Path], runs: Path) -> None:
    """CPU seconds per task kind of each format's graph run inline (after one warming run of each)."""
    import inline

    cpu: dict[str, dict[str, float]] = {}
    for name, image in images.items():
        inline.run_inline(image, runs / f"inline-{name}-warm")
        client, _, totals = inline.run_inline(image, runs / f"inline-{name}")
        cpu[name] = {**client.cpu, "total": totals["cpu"]}
    kinds = sorted({k for c in cpu.values() for k in c if k != "total"}, key=lambda k: -cpu["raw"].get(k, 0.0))
    print(f"\nCPU s per task kind, run inline (under cProfile){'':4}" + "".join(f"{n:>9}" for n in cpu))
    for k in [*kinds, "total"]:
        print(f"  {k:44}" + "".join(f"{c.get(k, 0.0):9.2f}" for c in cpu.values()))
    print(f"  {'total x raw':44}" + "".join(f"{c['total'] / cpu['raw']['total']:9.2f}" for c in cpu.values()))


if __name__ == "__main__":
    raise SystemExit(main())
