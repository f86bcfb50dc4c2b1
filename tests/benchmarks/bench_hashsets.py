"""Benchmark the known-item layer: index build, lookups, shared memory, perceptual queries.

Run on demand (pytest does not collect tests/benchmarks); it prints figures and
asserts nothing about time:

    /work/venv/bin/python tests/benchmarks/bench_hashsets.py                     # 50M SHA-1, 1M phash
    /work/venv/bin/python tests/benchmarks/bench_hashsets.py --entries 2000000   # quick run

What it measures:
  * build: N random SHA-1 rows go through the importer's real path after parsing
    (Spill -> triage.rules.builder.build -> install_index), with build time,
    on-disk size and the process's peak RSS; plus the text-parsing rate of a real
    import (an NSRL RDS 2.x-like NSRLFile.txt of --parse-lines lines);
  * lookups on one core: raw binary rows (HashIndex.find), hex decoding alone,
    KnownItems.lookup_codes on hex strings (decode + search + numpy answers) and
    KnownItems.lookup (the same, plus a Python tuple and list per file), 50% hits;
  * memory: 2 worker processes map the index and touch every page; their Rss, Pss
    and USS (Private_*) from /proc/<pid>/smaps_rollup show the index counted once;
  * perceptual: queries/s against --phash-refs reference hashes at several
    distances, brute force vs multi-index hashing (and the auto choice).
Target: >= 2 million lookups/s per core.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from triage.rules.builder import build
from triage.rules.catalog import SourceRecord
from triage.rules.hexcodec import decode_hex
from triage.rules.home import hashsets_dir
from triage.rules.importer import import_hashset, install_index
from triage.rules.matcher import KnownItems
from triage.rules.phashindex import PhashIndex
from triage.rules.spill import Spill

MIB = 1 << 20
CHUNK = 5_000_000


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def install_arrays(home: Path, name: str, fill: Callable[[Spill], None]) -> tuple[float, float, Path]:
    """Spill rows with ``fill``, build and install: the importer's path minus text parsing."""
    root = hashsets_dir(home)
    tmp = Path(tempfile.mkdtemp(dir=root.parent))
    spill = Spill(tmp)
    t0 = time.perf_counter()
    fill(spill)
    spill.close()
    t1 = time.perf_counter()
    out = tmp / "index"
    out.mkdir()
    counts, cats = build(spill, out, now())
    source = SourceRecord("0" * 64, f"<benchmark {name}>", "arrays", now(), 0, 0, counts)
    record = install_index(root, name, "known-good", out, source, counts, cats)
    t2 = time.perf_counter()
    shutil.rmtree(tmp, ignore_errors=True)
    return t1 - t0, t2 - t1, root / record.directory


def bench_build(home: Path, entries: int, seed: int) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    keep = np.empty((0, 20), dtype=np.uint8)

    def fill(spill: Spill) -> None:
        nonlocal keep
        for start in range(0, entries, CHUNK):
            rows = rng.integers(0, 256, (min(CHUNK, entries - start), 20), dtype=np.uint8)
            if start == 0:
                keep = rows[: 1_000_000].copy()  # known members, for the lookup figures
            spill.add_rows("sha1", rows)

    spill_s, build_s, folder = install_arrays(home, "big", fill)
    size = folder_size(folder)
    print(f"build   {entries:,} SHA-1: spill {spill_s:.1f} s, sort+write+fsync {build_s:.1f} s "
          f"({entries / (spill_s + build_s) / 1e6:.2f} M entries/s); on disk {size / MIB:,.0f} MiB "
          f"({size / entries:.1f} B/entry); peak RSS {rss_peak_mib():,.0f} MiB")
    return folder, keep


def bench_parse(home: Path, lines: int, tmp: Path) -> None:
    rng = np.random.default_rng(7)
    path = tmp / "NSRLFile.txt"
    sha1 = rng.integers(0, 256, (lines, 20), dtype=np.uint8)
    md5 = rng.integers(0, 256, (lines, 16), dtype=np.uint8)
    with open(path, "w") as fh:
        fh.write('"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\n')
        for i in range(lines):
            fh.write(f'"{sha1[i].tobytes().hex().upper()}","{md5[i].tobytes().hex().upper()}","00000000","f{i}.dll",{i},1,"362",""\n')
    t0 = time.perf_counter()
    report = import_hashset(path, "parsed", "known-good", home=home)
    dt = time.perf_counter() - t0
    print(f"import  NSRLFile.txt of {lines:,} lines ({path.stat().st_size / MIB:,.0f} MiB), md5+sha1: {dt:.1f} s "
          f"= {lines / dt / 1e6:.2f} M lines/s end to end (parse, check, sort, write)")
    assert report.counts == {"md5": lines, "sha1": lines}


def queries(members: np.ndarray, batch: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    rows = members[rng.integers(0, len(members), batch)].copy()
    rows[1::2] = rng.integers(0, 256, (batch // 2, 20), dtype=np.uint8)  # half misses
    return rows, [r.tobytes().hex() for r in rows]


def bench_lookup(home: Path, folder: Path, members: np.ndarray, batch: int, seconds: float) -> None:
    known = KnownItems.open(home)
    index = next(s for s in known._current() if s.name == "big").hashes["sha1"]
    rows, hexes = queries(members, batch, 1)
    valid = np.ones(batch, dtype=bool)
    index.find(rows, valid)  # map and warm
    for label, call in (
        ("binary rows, HashIndex.find", lambda: index.find(rows, valid)),
        ("hex decoding alone", lambda: decode_hex(hexes, 20)),
        ("hex strings, KnownItems.lookup_codes", lambda: known.lookup_codes(sha1=hexes)),
        ("hex strings, KnownItems.lookup", lambda: known.lookup(sha1=hexes)),
    ):
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            call()
            done += batch
        rate = done / (time.perf_counter() - t0)
        print(f"lookup  {label:<37} batch {batch:>6,}: {rate / 1e6:5.2f} M hashes/s")
    hits = sum(1 for g in known.lookup(sha1=hexes) if g[0])
    print(f"lookup  hit rate {hits / batch:.0%} (expected 50%)")


def _smaps(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields


def _worker(home: str, ready: "mp.synchronize.Barrier", done: "mp.synchronize.Event") -> None:  # type: ignore[name-defined]
    known = KnownItems.open(home)
    s = next(s for s in known._current() if s.name == "big")
    index = s.hashes["sha1"]
    key, rest, *_ = index._load()
    checksum = int(np.bitwise_xor.reduce(key)) ^ int(np.bitwise_xor.reduce(rest.ravel()))  # touch every page
    rng = np.random.default_rng(os.getpid())
    hexes = [rng.bytes(20).hex() for _ in range(10_000)]
    for _ in range(20):
        known.lookup(sha1=hexes)
    ready.wait()
    done.wait()
    del checksum


def bench_memory(home: Path, folder: Path) -> None:
    ctx = mp.get_context("spawn")
    ready, done = ctx.Barrier(3), ctx.Event()
    procs = [ctx.Process(target=_worker, args=(str(home), ready, done)) for _ in range(2)]
    for p in procs:
        p.start()
    ready.wait()
    index_mib = sum(f.stat().st_size for f in folder.glob("sha1.*")) / MIB
    for p in procs:
        f = _smaps(p.pid)  # type: ignore[arg-type]
        uss = (f["Private_Clean"] + f["Private_Dirty"]) / 1024
        print(f"memory  worker {p.pid}: Rss {f['Rss'] / 1024:,.0f} MiB, Pss {f['Pss'] / 1024:,.0f} MiB, "
              f"USS {uss:,.0f} MiB, Shared {(f['Shared_Clean'] + f['Shared_Dirty']) / 1024:,.0f} MiB")
    print(f"memory  index files {index_mib:,.0f} MiB, mapped by both: each Pss carries about half of it and "
          "no USS does (one copy, in the page cache)")
    done.set()
    for p in procs:
        p.join()


def bench_phash(home: Path, refs: int, batch: int) -> None:
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**64, refs, dtype=np.uint64)

    def fill(spill: Spill) -> None:
        spill.add_rows("phash", hashes.astype(">u8").view(np.uint8).reshape(-1, 8))
        names = [f"ref{i}".encode() for i in range(refs)]
        offsets = np.zeros(refs + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(n) for n in names])
        spill.add_name_blob(b"".join(names), offsets)

    _, build_s, folder = install_arrays(home, "pictures", fill)
    print(f"phash   {refs:,} references built in {build_s:.1f} s ({folder_size(folder) / MIB:,.0f} MiB with MIH tables)")
    index = PhashIndex(folder)
    flips = np.zeros(batch, dtype=np.uint64)
    for i in range(batch // 2):  # half are near-duplicates, 0-10 bits off
        for bit in rng.choice(64, int(rng.integers(0, 11)), replace=False):
            flips[i] |= np.uint64(1) << np.uint64(bit)
    q = rng.integers(0, 2**64, batch, dtype=np.uint64)
    q[: batch // 2] = hashes[rng.integers(0, refs, batch // 2)] ^ flips[: batch // 2]
    for distance in (4, 8, 10, 12):
        rates = {}
        for method in ("brute", "mih", None):
            n = batch if method != "brute" else min(batch, 500)
            best = float("inf")
            for _ in range(3):  # best of three: the figure is the method, not the neighbours' load
                t0 = time.perf_counter()
                index.nearest(q[:n], distance, method)
                best = min(best, time.perf_counter() - t0)
            rates[method or "auto"] = n / best
        print(f"phash   d={distance:>2}: brute {rates['brute']:>9,.0f} q/s, multi-index {rates['mih']:>9,.0f} q/s, "
              f"auto {rates['auto']:>9,.0f} q/s")
    known = KnownItems.open(home)
    hexes = [f"{int(v):016x}" for v in q]
    t0 = time.perf_counter()
    matched = known.match_phash(hexes)
    dt = time.perf_counter() - t0
    print(f"phash   KnownItems.match_phash, default d=10, {batch:,} hex queries: {batch / dt:,.0f} q/s, "
          f"{sum(1 for m in matched if m[0]):,} matched")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=50_000_000, help="SHA-1 entries in the big index")
    ap.add_argument("--parse-lines", type=int, default=1_000_000, help="lines of the NSRLFile.txt import")
    ap.add_argument("--phash-refs", type=int, default=1_000_000, help="perceptual reference hashes")
    ap.add_argument("--batch", type=int, default=10_000, help="lookup batch size")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per lookup figure")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build (default: a temp dir, removed)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hashsets-", dir=args.workdir))
    home = work / "home"
    hashsets_dir(home).mkdir(parents=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"numpy {np.__version__}, {os.cpu_count()} cores, load average {load} (other work skews figures), work dir {work}")
    try:
        folder, members = bench_build(home, args.entries, 0)
        bench_memory(home, folder)  # first, while this process has not mapped the index itself
        bench_lookup(home, folder, members, args.batch, args.seconds)
        bench_lookup(home, folder, members, 1000, args.seconds)
        bench_parse(home, args.parse_lines, work)
        bench_phash(home, args.phash_refs, 2000)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
