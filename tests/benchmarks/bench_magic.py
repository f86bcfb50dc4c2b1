"""Typing cost per file (issue #11 point 3: <= 0.1 CPU ms per file), and how far the answers are from `file`'s.

Run on demand; prints figures, asserts nothing about time:

    .venv/bin/python tests/benchmarks/bench_magic.py               # the 0.5 GiB run-benchmark image
    .venv/bin/python tests/benchmarks/bench_magic.py --usr 3000    # + a varied sample of this machine's files

Every regular file of the run benchmark's image (and of the third-party corpus
images under /work/shared/corpus, and optionally files from /usr) is read whole
(up to libmagic's own 7 MiB ``bytes_max``, what `file` looks at). Then, on the
same bytes:
  * before: two libmagic calls (MIME type, description) on a 64 KiB prefix;
  * whole database: :func:`triage.workers.answers.magic_type`'s logic on ``magic-bytes``
    (one call where the MIME type follows from the description, once per distinct
    content) with python-magic, i.e. libmagic's whole compiled database;
  * now: the same through reduced databases (triage.workers.magicdb), from a fresh
    worker thread each time (every database it needs is loaded within the time);
  * the oracle: libmagic on the whole content, as `file --mime-type` and `file` say
    (tests/workers/test_typing.py checks that the two agree).
CPU time is process time, whole database and now measured alternately (A/B/A/B),
best of --repeat; the machine may be shared.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402

BYTES_MAX = 7 << 20  # libmagic 5.44's default bytes_max: what `file` reads of a file
CORPUS_IMAGES = ["dfir_ntfs/exfat_win.raw", "dfir_ntfs/fat_deleted_dir_2.raw", "velociraptor/hierarchy_64.ext4",
                 "sleuthkit/image.dd", "dfvfs/iso9660.raw"]


def image_files(path: Path, offsets: list[int]) -> list[tuple[str, bytes]]:
    """(path, content) of every non-empty regular file of the filesystems at ``offsets``."""
    import pytsk3

    img, out = pytsk3.Img_Info(str(path)), []

    def walk(d: pytsk3.Directory, prefix: str) -> None:
        for e in d:
            name = e.info.name.name.decode("utf-8", "replace")
            meta = e.info.meta
            if name in (".", "..") or meta is None:
                continue
            if meta.type == pytsk3.TSK_FS_META_TYPE_DIR and not name.startswith("$"):
                try:
                    walk(e.as_directory(), f"{prefix}/{name}")
                except OSError:
                    pass
            elif meta.type == pytsk3.TSK_FS_META_TYPE_REG and meta.size > 0:
                try:
                    out.append((f"{prefix}/{name}", e.read_random(0, min(meta.size, BYTES_MAX))))
                except OSError:
                    pass

    for off in offsets:
        fs = pytsk3.FS_Info(img, offset=off)
        walk(fs.open_dir("/"), "")
    return out


def usr_files(n: int, seed: int) -> list[tuple[str, bytes]]:
    """Up to 40 files per extension from /usr and /etc, ``n`` in all: a varied set."""
    by_ext: dict[str, list[str]] = collections.defaultdict(list)
    for root in ("/usr/share", "/usr/bin", "/usr/lib", "/etc"):
        for dp, _, fn in os.walk(root):
            for f in fn:
                p = os.path.join(dp, f)
                if os.path.isfile(p) and not os.path.islink(p):
                    by_ext[os.path.splitext(f)[1].lower()].append(p)
    rnd = random.Random(seed)
    pick = [p for ps in by_ext.values() for p in rnd.sample(ps, min(40, len(ps)))]
    rnd.shuffle(pick)
    out = []
    for p in pick[:n]:
        try:
            data = Path(p).read_bytes()[:BYTES_MAX]
        except OSError:
            continue
        if data:
            out.append((p, data))
    return out


def cpu_ms(fn, items: list, repeat: int) -> float:
    """Best process-time CPU ms per item of ``fn`` over ``items``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for it in items:
            fn(it)
        best = min(best, time.process_time() - t0)
    return 1000 * best / max(1, len(items))


def compare(label: str, files: list[tuple[str, bytes]], magic_bytes: int, repeat: int) -> None:
    import hashlib

    import magic

    from triage.workers.answers import _Known

    mime_m, desc_m = magic.Magic(mime=True), magic.Magic()
    oracle = [(mime_m.from_buffer(d), desc_m.from_buffer(d)) for _, d in files]
    before = cpu_ms(lambda d: (mime_m.from_buffer(d[: 64 << 10]), desc_m.from_buffer(d[: 64 << 10])),
                    [d for _, d in files], repeat)
    keyed = [(d[:magic_bytes], hashlib.sha256(d).hexdigest()) for _, d in files]
    runs: dict[str, list] = {"whole": [], "now": []}
    for _ in range(repeat):
        for kind in runs:
            typer = _Known()  # a fresh worker thread's state: empty caches, nothing loaded
            if kind == "whole":
                typer.typer = None
            t0 = time.process_time()
            answers = [typer.type(head, None, key) for head, key in keyed]
            runs[kind].append((time.process_time() - t0, typer, answers))
    (w_cpu, _, w_answers), (cpu, typer, answers) = (min(runs[k], key=lambda r: r[0]) for k in ("whole", "now"))
    whole, now = 1000 * w_cpu / len(files), 1000 * cpu / len(files)
    calls = typer.calls
    warm = float("inf")
    for _ in range(repeat):  # warm: the same thread again, databases loaded, answers not cached; best pass
        t0 = time.process_time()
        for head, key in keyed:
            typer.cache.clear()
            typer.type(head, None, key)
        warm = min(warm, 1000 * (time.process_time() - t0) / len(files))
    t = typer.typer
    print(f"{label}: {len(files)} files; before (2 calls, 64 KiB) {before:.3f} CPU ms/file; whole database "
          f"({magic_bytes} B, derived MIME, cache) {whole:.3f}; now (reduced databases) {now:.3f} from cold "
          f"= {before / now:.2f}x less than before, {whole / now:.2f}x less than the whole database; warm {warm:.3f} "
          f"(target <= 0.1 ms/file); libmagic calls/file {calls / len(files):.2f}, cache hits {typer.hits}"
          + (f"; databases loaded {t.loads}, borrowed {t.borrowed}" if t is not None else " (reduced databases off)"))
    kinds: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for (name, _), (head, key), (o_mime, _) in zip(files, keyed, oracle, strict=True):
        k = kinds[o_mime]
        k[0] += 1
        for i, fn in ((1, desc_m.from_buffer), (2, t or desc_m.from_buffer)):
            t0 = time.process_time()
            fn(head)
            k[i] += time.process_time() - t0
    top = sorted(kinds.items(), key=lambda kv: -kv[1][1])[:8]
    print("    description call by MIME type, whole database -> reduced: " + ", ".join(
        f"{m} {n} files {1000 * a / n:.3f} -> {1000 * b / n:.3f} ms" for m, (n, a, b) in top))
    if answers != w_answers:
        print(f"    !! reduced databases answer differently from the whole one for "
              f"{sum(a != b for a, b in zip(answers, w_answers))} files")
    diffs: collections.Counter = collections.Counter()
    for (mime, desc), (o_mime, o_desc) in zip(answers, oracle, strict=True):
        if mime != o_mime:
            diffs[f"MIME {o_mime} -> {mime}"] += 1
        elif desc != o_desc:
            a, b = re.sub(r"[0-9]+", "N", o_desc), re.sub(r"[0-9]+", "N", desc)
            diffs[f"description {a[:70]!r} -> {b[:70]!r}" if a != b else f"description: numbers only ({a[:60]!r})"] += 1
    print(f"    differences from `file` on the whole content: {sum(diffs.values())} of {len(files)}")
    for what, n in diffs.most_common(12):
        print(f"      {n:4} {what}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=0.5, help="run-benchmark image size (default 0.5)")
    ap.add_argument("--workdir", type=Path, default=Path("/work/benchdata"))
    ap.add_argument("--magic-bytes", type=int, default=None, help="prefix size (default: triage.yaml's)")
    ap.add_argument("--usr", type=int, default=0, help="also this many varied files from /usr and /etc")
    ap.add_argument("--corpus", type=Path, default=Path("/work/shared/corpus"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    if args.magic_bytes is None:
        from triage.settings import content_options

        args.magic_bytes = content_options().magic_bytes
    spec = corpus.CorpusSpec(args.size_gib, 1729)
    image, manifest = corpus.build_image(spec, args.workdir)
    compare(f"run benchmark {image.name}", image_files(image, [o for o, _ in manifest["layout"].values()]),
            args.magic_bytes, args.repeat)
    files = []
    for rel in CORPUS_IMAGES:
        if (args.corpus / rel).exists():
            files += image_files(args.corpus / rel, [0])
    if files:
        compare("third-party corpus images", files, args.magic_bytes, args.repeat)
    if args.usr:
        compare("this machine's /usr and /etc", usr_files(args.usr, 7), args.magic_bytes, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
