"""Benchmark archive expansion: member bytes per CPU second through the expander, per format,
against the same bytes digested as plain content (the per-file work every member gets too).

Run on demand (pytest does not collect tests/benchmarks); it prints figures, asserts nothing:

    .venv/bin/python tests/benchmarks/bench_archives.py               # 20,000 files, ~120 MiB
    .venv/bin/python tests/benchmarks/bench_archives.py --files 2000  # quicker

The members are a phone-like mix (a third small JPEG-sized random blobs, the rest text-like),
archived in memory as zip (deflate), tar, tgz and 7z; CPU is this process's own
(``time.process_time``), single-threaded, so the figures hold on a loaded machine better than
wall time does.
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import tarfile
import time
import zipfile

from triage.settings import archive_limits, content_options
from triage.workers.archives import Expander
from triage.workers.digest import Digest, finish


def members(n: int) -> dict[str, bytes]:
    rnd = random.Random(1)
    words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(500)]
    out = {}
    for i in range(n):
        if i % 3 == 0:
            out[f"DCIM/Camera/IMG_{i:05d}.jpg"] = b"\xff\xd8\xff\xe0" + rnd.randbytes(rnd.randint(8_000, 30_000))
        else:
            out[f"data/app/files/{i:05d}.txt"] = b" ".join(rnd.choice(words) for _ in range(rnd.randint(50, 600)))
    return out


def build(kind: str, files: dict[str, bytes]) -> tuple[bytes, str]:
    b = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for n, d in files.items():
                z.writestr(n, d)
        return b.getvalue(), "application/zip"
    if kind == "7z":
        import py7zr

        with py7zr.SevenZipFile(b, "w") as z:
            for n, d in files.items():
                z.writestr(d, n)
        return b.getvalue(), "application/x-7z-compressed"
    with tarfile.open(fileobj=b, mode="w") as t:
        for n, d in files.items():
            ti = tarfile.TarInfo(n)
            ti.size = len(d)
            t.addfile(ti, io.BytesIO(d))
    data = b.getvalue()
    if kind == "tgz":
        return gzip.compress(data, 1), "application/gzip"
    return data, "application/x-tar"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--formats", default="tar,zip,tgz,7z")
    args = ap.parse_args()
    files = members(args.files)
    total = sum(map(len, files.values()))
    opts = content_options()
    lim = archive_limits()
    lim = type(lim)(**{**lim.__dict__, "max_members": args.files + 10})
    t0 = time.process_time()
    for name, data in files.items():
        d = Digest(len(data), opts)
        d.feed(data)
        finish(d, name)
    plain = time.process_time() - t0
    print(f"{args.files} files, {total / 2**20:.1f} MiB; plain digest: {total / 2**20 / plain:.1f} MiB/s CPU")
    for kind in args.formats.split(","):
        data, mime = build(kind, files)
        exp = Expander(opts, lim)
        t0 = time.process_time()
        status = exp.expand(io.BytesIO(data), "bench", len(data), mime)
        cpu = time.process_time() - t0
        print(f"{kind:4s} {len(data) / 2**20:7.1f} MiB archive, {exp.members} members, status {status}: "
              f"{total / 2**20 / cpu:6.1f} MiB/s CPU ({plain / cpu:.0%} of plain digest)")


if __name__ == "__main__":
    main()
