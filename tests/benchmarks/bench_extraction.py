"""Benchmark a phone extraction (issue 15): a tar of an Android file system against the same files on a raw disk.

Run on demand (pytest does not collect tests/benchmarks); it prints figures and asserts
nothing about time:

    .venv/bin/python tests/benchmarks/bench_extraction.py                       # 21,000 files, >= 1.1 GiB
    .venv/bin/python tests/benchmarks/bench_extraction.py --files 6000 --gib 0.3  # a loaded machine
    .venv/bin/python tests/benchmarks/bench_extraction.py --also tgz folder     # + the .tar.gz and the folder

One file tree is built once under ``--workdir`` (default /work/benchdata, kept and reused):
an Android-shaped ``data/media/0`` + ``data/data/<app>`` tree of small files, a third of them
pictures (JPEG and PNG that decode, each with unique trailing bytes), the rest databases,
text, documents and binaries, topped up to the size asked with a few camera videos. From it:
``phone.tar`` (GNU tar, names sorted) and ``disk.raw`` (ext4 made by ``mke2fs -d`` from the same
tree), so both sources hold exactly the same files and every file gets the same work (md5,
sha1, sha256, libmagic, pHash of pictures, entropy). Each is triaged with ``run_image`` on
one warm local cluster of 2 workers, carving off (an extraction has nothing to carve), best of
``--repeat``. Figures: content bytes hashed per second of wall time, for each source, and the
tar's as a share of the raw device's (target >= 80 %). The machine may be shared: every timed
window reports the CPU other processes took meanwhile, and the workers' own CPU seconds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark modules, not the repo root

import corpus  # noqa: E402
import probes  # noqa: E402

MIB, GIB = 1 << 20, 1 << 30
WORKERS = 2
VERSION = 1  # bump when the tree changes, so cached data is rebuilt
APPS = ("com.whatsapp", "com.android.chrome", "org.telegram.messenger", "com.instagram.android",
        "com.google.android.gm")


def picture_pool(seed: int) -> dict[str, list[bytes]]:
    """Phone-sized pictures (40 distinct, several encodings each), sorted by size per format."""
    import numpy as np
    from PIL import Image

    rng, rnd = np.random.default_rng(seed), random.Random(seed)
    pool: dict[str, list[bytes]] = {"jpeg": [], "png": []}
    for n in range(40):
        png = n % 4 == 3
        w, h = rnd.choice(((320, 240), (480, 360), (640, 480)) if png else ((640, 480), (800, 600), (1024, 768)))
        small = rng.integers(0, 256, (max(2, h // 64), max(2, w // 64), 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.int16)
        field += rng.integers(-6, 7, field.shape, dtype=np.int16)
        img = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
        for quality in ((None,) if png else (50, 70, 85, 95)):
            buf = io.BytesIO()
            img.save(buf, "PNG", compress_level=1) if png else img.save(buf, "JPEG", quality=quality)
            pool["png" if png else "jpeg"].append(buf.getvalue())
    for encoded in pool.values():
        encoded.sort(key=len)
    return pool


def build_tree(src: Path, files: int, target: int, seed: int) -> dict:
    """The Android-shaped tree: ``files`` small files (a third pictures), topped up with videos to ``target`` bytes."""
    rnd = random.Random(seed)
    pool = picture_pool(seed)
    sizes = {k: [len(b) for b in v] for k, v in pool.items()}
    text = corpus._Text(seed)
    kinds = [k for k, (_, w) in corpus.OTHER_KINDS.items() for _ in range(w)]
    total, counts = 0, {"pictures": 0, "others": 0, "videos": 0}

    def put(rel: str, data: bytes) -> None:
        nonlocal total
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        total += len(data)

    for i in range(files):
        tag = f"#{seed}-{i}#".encode()
        if i % 3 == 0:
            png = i % 12 == 0
            fmt = "png" if png else "jpeg"
            body = corpus.picture_bytes(pool[fmt], sizes[fmt], rnd.randrange(40_000, 220_000), tag, rnd)
            where = (f"data/media/0/Pictures/Screenshots/Screenshot_{i:06d}.png" if png
                     else f"data/media/0/DCIM/Camera/IMG_2024{i % 12 + 1:02d}{i % 28 + 1:02d}_{i:06d}.jpg")
            put(where, body)
            counts["pictures"] += 1
            continue
        kind = rnd.choice(kinds)
        ext = rnd.choice(corpus.OTHER_KINDS[kind][0])
        size = int(1000 * 10 ** rnd.uniform(0, 2.1))  # 1 KB - 125 KB, log-uniform
        app = rnd.choice(APPS)
        folder = rnd.choice((f"data/data/{app}/databases", f"data/data/{app}/files", f"data/data/{app}/cache",
                             "data/media/0/Download", "data/media/0/Documents", f"data/media/0/Android/data/{app}"))
        put(f"{folder}/f{i:06d}{ext}", corpus.other_bytes(kind, size, tag, text, rnd))
        counts["others"] += 1
    n = 0
    while total < target:
        size = min(rnd.randrange(30, 60) * MIB, max(target - total, MIB))
        put(f"data/media/0/DCIM/Camera/VID_2024_{n:04d}.mp4",
            corpus.other_bytes("mp4", size, f"#video-{n}#".encode(), text, rnd))
        counts["videos"] += 1
        n += 1
    return {"files": sum(counts.values()), "content_bytes": total, **counts}


def build(workdir: Path, files: int, gib: float, seed: int) -> tuple[Path, dict]:
    """The cached tree, tar and raw disk for these parameters (built now when missing)."""
    base = workdir / f"phone-{files}f-{gib:g}g-s{seed}-v{VERSION}"
    manifest = base / "manifest.json"
    if manifest.is_file():
        return base, json.loads(manifest.read_text())
    shutil.rmtree(base, ignore_errors=True)
    (base / "tree").mkdir(parents=True)
    t0 = time.perf_counter()
    info = build_tree(base / "tree", files, int(gib * GIB), seed)
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}
    subprocess.run(["tar", "--sort=name", "--format=gnu", "-cf", str(base / "phone.tar"), "-C", str(base / "tree"),
                    "data"], check=True, env=env)
    disk = base / "disk.raw"
    with open(disk, "wb") as fh:
        fh.truncate((int(info["content_bytes"] * 1.25) + 256 * MIB) // MIB * MIB)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-E", "root_owner=0:0", "-d", str(base / "tree"), str(disk)],
                   check=True, env=env)
    info["build_seconds"] = round(time.perf_counter() - t0, 1)
    manifest.write_text(json.dumps(info, indent=2) + "\n")
    return base, info


def tgz(base: Path) -> Path:
    out = base / "phone.tar.gz"
    if not out.is_file():
        subprocess.run(f"gzip -1 -c {base / 'phone.tar'} > {out}.part && mv {out}.part {out}", shell=True, check=True)
    return out


def timed(client, pids: list[int], source: Path, out: Path) -> dict:
    from triage.pipeline import run_image

    probes.forget_answers(client)  # the same files in every container: each pays typing and pHash
    cpu0 = {p: sum(__import__("psutil").Process(p).cpu_times()[:2]) for p in pids}
    with probes.Load() as load:
        res = run_image(source, out, client, carve="none", overwrite=True)
    cpu1 = {p: sum(__import__("psutil").Process(p).cpu_times()[:2]) for p in pids}
    shutil.rmtree(out, ignore_errors=True)
    f = res.summary["files"]
    return {"wall": load.wall, "load": load, "cpu": sum(cpu1[p] - cpu0[p] for p in pids),
            "hashed_bytes": f["hashed_bytes"], "hashed": f["hashed"], "phashed": f["images_phashed"],
            "exit": res.exit_code}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=21000, help="small files in the tree (default 21,000)")
    ap.add_argument("--gib", type=float, default=1.1, help="content size, topped up with videos (default 1.1)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per source, best reported (default 2)")
    ap.add_argument("--also", nargs="*", default=[], choices=("tgz", "folder"), help="also triage these shapes")
    ap.add_argument("--workdir", type=Path, default=Path("/work/benchdata"))
    ap.add_argument("--seed", type=int, default=1729)
    args = ap.parse_args(argv)

    from triage.cluster.connect import connect

    base, info = build(args.workdir, args.files, args.gib, args.seed)
    print(f"tree {base}: {info['files']:,} files ({info['pictures']:,} pictures, {info['others']:,} others, "
          f"{info['videos']} videos), {info['content_bytes'] / GIB:.2f} GiB of content (built in "
          f"{info['build_seconds']} s, cached)")
    sources = {"raw disk (ext4, same files)": base / "disk.raw", "tar": base / "phone.tar"}
    if "tgz" in args.also:
        sources["tar.gz"] = tgz(base)
    if "folder" in args.also:
        sources["folder"] = base / "tree"
    for label, path in sources.items():
        if path.is_file():
            warm = probes.read_through(path)
            print(f"  {label}: {path.stat().st_size / GIB:.2f} GiB; page cache warmed in {warm:.1f} s")
    runs = args.workdir / "runs" / f"extraction-{time.strftime('%Y%m%dT%H%M%S')}"
    results: dict[str, list[dict]] = {k: [] for k in sources}
    with connect(workers=WORKERS) as client:
        pids = sorted(client.run(os.getpid).values())
        timed(client, pids, sources["tar"], runs / "warm")  # imports, libmagic, Pillow loaded on the workers
        for i in range(args.repeat):
            for label, path in sources.items():  # interleaved: load from other processes hits each alike
                results[label].append(timed(client, pids, path, runs / f"{i}"))
    shutil.rmtree(runs, ignore_errors=True)
    rate = {}
    for label, rs in results.items():
        b = min(rs, key=lambda r: r["wall"])
        rate[label] = b["hashed_bytes"] / b["wall"]
        idle = b["hashed_bytes"] / max(b["cpu"] / WORKERS, 1e-9)
        walls = ", ".join(f"{r['wall']:.1f}" for r in rs)
        print(f"{label:<28} best {b['wall']:7.2f} s of {len(rs)} ({walls}): "
              f"{b['hashed']:,} files / {b['hashed_bytes'] / GIB:.2f} GiB hashed, {b['phashed']:,} pictures "
              f"pHashed, {rate[label] / MIB:6.1f} MiB/s; workers' CPU {b['cpu']:.1f} s (CPU-bound estimate "
              f"{idle / MIB:.1f} MiB/s); exit {b['exit']} {b['load'].note()}")
    raw = rate["raw disk (ext4, same files)"]
    for label in sources:
        if label.startswith("raw"):
            continue
        print(f"  {label} / raw disk = {100 * rate[label] / raw:.0f} % of the raw device's bytes/s (target >= 80 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
