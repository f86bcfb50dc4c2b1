"""The benchmark's evidence: a multi-partition raw disk full of realistic files, built once and cached.

Nothing is mounted. Each filesystem is built in its own file (``mke2fs -d`` from a
source tree; ``mkfs.vfat`` + ``mcopy -s``), the disk is laid out by ``sfdisk`` and
the filesystems are copied in with ``dd conv=notrunc``. The corpus scales
linearly with ``size_gib``: per 2 GiB of disk about 5000 files and 1.1 GiB of
content, half of them JPEG/PNG pictures (20 KB - 2 MB) made from ~100 distinct
random pictures (re-encoded at other qualities and scales, each file with unique
trailing bytes so every hash differs while it still decodes), the rest text,
documents and binaries of varied sizes, including a few 50-200 MiB files.
Building is slow (a minute or two per 2 GiB), so the image is cached in the
work directory under a name that encodes every parameter.
"""

from __future__ import annotations

import bisect
import io
import json
import os
import random
import shutil
import subprocess
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

MIB = 1 << 20
GIB = 1 << 30
SECTOR = 512
GENERATOR_VERSION = 1  # bump when the corpus changes, so cached images are rebuilt

# per 2 GiB of disk ("one unit"); --size-gib 4 doubles every count and byte budget
UNIT_GIB = 2.0
IMAGES_PER_UNIT = 2500
OTHERS_PER_UNIT = 2497
BIG_MIB = (60, 110, 170)  # a few large files per unit, cycled
CONTENT_PER_UNIT = int(1.1 * GIB)
DISTINCT_PICTURES = 100
EXT4_SHARE = 0.56  # of the disk; FAT32 gets the rest but a 1 MiB gap at either end

_ENV = {**os.environ, "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C"}

# kind: (extensions, weight among the non-picture files)
OTHER_KINDS = {
    "text": ((".txt", ".md", ".log"), 24),
    "csv": ((".csv",), 8),
    "html": ((".html", ".htm"), 7),
    "pdf": ((".pdf",), 12),
    "docx": ((".docx",), 6),
    "zip": ((".zip",), 5),
    "sqlite": ((".db", ".sqlite"), 6),
    "mp3": ((".mp3",), 5),
    "exe": ((".exe", ".dll"), 7),
    "binary": ((".bin", ".dat", ".tmp", ""), 20),
}
WORDS = ("evidence seized device partition examiner ledger invoice meeting transfer account wire offshore "
         "password shipment contract customer balance payment schedule courier warehouse report draft").split()


@dataclass(frozen=True)
class CorpusSpec:
    size_gib: float = 2.0
    seed: int = 1729

    @property
    def key(self) -> str:
        return f"bench-{self.size_gib:g}g-s{self.seed}-v{GENERATOR_VERSION}"

    @property
    def scale(self) -> float:
        return self.size_gib / UNIT_GIB

    @property
    def disk_bytes(self) -> int:
        return int(self.size_gib * GIB) // MIB * MIB


@dataclass(frozen=True)
class PlannedFile:
    partition: str  # "ext4" or "fat"
    rel: str
    kind: str
    size: int


def _run(cmd: list[str], stdin: bytes | None = None) -> None:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, env=_ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")


# ---------------------------------------------------------------- pictures


def picture_pool(seed: int) -> dict[str, list[bytes]]:
    """~100 distinct random pictures, each encoded several ways; per format, sorted by size.

    A smooth random field plus noise looks enough like a photo for JPEG sizes to
    be realistic; noise level and quality spread the sizes from ~10 KB to ~3 MB.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    rnd = random.Random(seed)
    pool: dict[str, list[bytes]] = {"jpeg": [], "png": []}
    dims = [(640, 480), (800, 600), (1024, 768), (1280, 960), (1600, 1200), (2048, 1536), (2592, 1944), (3000, 2000)]
    for n in range(DISTINCT_PICTURES):
        png = n % 4 == 3
        w, h = rnd.choice(dims[:4] if png else dims)
        small = rng.integers(0, 256, (max(2, h // 96), max(2, w // 96), 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.int16)
        noise = rnd.choice((0, 2, 5)) if png else rnd.choice((3, 8, 14, 24, 32))
        if noise:
            field += rng.integers(-noise, noise + 1, field.shape, dtype=np.int16)
        img = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
        for scale in (1, 2, 4):
            variant = img if scale == 1 else img.resize((w // scale, h // scale), Image.BILINEAR)
            if png:
                buf = io.BytesIO()
                variant.save(buf, "PNG", compress_level=1)
                pool["png"].append(buf.getvalue())
                continue
            for quality in (40, 60, 75, 85, 92, 97):
                buf = io.BytesIO()
                variant.save(buf, "JPEG", quality=quality)
                pool["jpeg"].append(buf.getvalue())
    for encoded in pool.values():
        encoded.sort(key=len)
    return pool


def picture_bytes(pool: list[bytes], sizes: list[int], target: int, tag: bytes, rnd: random.Random) -> bytes:
    """The largest pool encoding that fits ``target``, plus unique trailing bytes up to ``target``.

    Decoders stop at the end-of-image marker (JPEG EOI, PNG IEND), so the file still
    decodes and its perceptual hash is the picture's; its md5/sha256 are its own.
    """
    i = max(bisect.bisect_right(sizes, target - len(tag)) - 1, 0)
    body = pool[i]
    pad = max(target - len(body) - len(tag), 0)
    return body + tag + rnd.randbytes(pad)


# ---------------------------------------------------------------- other content


class _Text:
    """Cheap text of any size: slices of one long generated text."""

    def __init__(self, seed: int) -> None:
        rnd = random.Random(seed)
        lines = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(4, 16))) for _ in range(60000)]
        self.prose = ("\n".join(lines) + "\n").encode()
        rows = [",".join([str(rnd.randrange(10**6)), rnd.choice(WORDS), f"{rnd.random() * 1e4:.2f}",
                          f"2023-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}"]) for _ in range(60000)]
        self.csv = ("id,item,amount,date\n" + "\n".join(rows) + "\n").encode()

    def take(self, src: bytes, size: int, rnd: random.Random) -> bytes:
        out = bytearray()
        while len(out) < size:
            start = rnd.randrange(len(src) // 2)
            out += src[start : start + size - len(out)]
        return bytes(out[:size])


def other_bytes(kind: str, size: int, tag: bytes, text: _Text, rnd: random.Random) -> bytes:
    """``size`` bytes that libmagic types as ``kind``, unique through ``tag``."""
    if size == 0:
        return b""
    if kind in ("text", "csv", "html"):
        head = {"text": b"", "csv": b"id,item,amount,date\n", "html": b"<!DOCTYPE html>\n<html><body><pre>\n"}[kind]
        first = head + tag.hex().encode() + b"\n"
        return (first + text.take(text.csv if kind == "csv" else text.prose, size, rnd))[:max(size, len(first))]
    if kind == "docx" or kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            if kind == "docx":
                z.writestr("[Content_Types].xml", b'<?xml version="1.0"?><Types/>')
                z.writestr("word/document.xml", b"<w:document>" + tag.hex().encode() + b"</w:document>")
                z.writestr("word/media/blob.bin", rnd.randbytes(max(size - 600, 16)))
            else:
                z.writestr("data/payload.bin", tag + rnd.randbytes(max(size - 200, 16)))
        return buf.getvalue()
    head = {"pdf": b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n", "sqlite": b"SQLite format 3\x00\x10\x00\x01\x01",
            "mp3": b"ID3\x03\x00\x00\x00\x00\x0f\x76", "exe": b"MZ\x90\x00\x03\x00\x00\x00\x04\x00",
            "binary": b"", "mp4": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"}[kind]
    tail = b"\n%%EOF\n" if kind == "pdf" else b""
    body = head + tag
    return (body + rnd.randbytes(max(size - len(body) - len(tail), 0)) + tail)[:max(size, len(body))]


# ---------------------------------------------------------------- the plan


def plan(spec: CorpusSpec) -> list[PlannedFile]:
    """Every file of the corpus: partition, path, kind and size. Deterministic for a spec."""
    import numpy as np

    s = spec.scale
    rng = np.random.default_rng(spec.seed)
    rnd = random.Random(spec.seed)
    n_img, n_other = round(IMAGES_PER_UNIT * s), round(OTHERS_PER_UNIT * s)
    big = [BIG_MIB[i % len(BIG_MIB)] * MIB for i in range(max(1, round(len(BIG_MIB) * s)))]
    budget = int(CONTENT_PER_UNIT * s)
    img_sizes = np.clip(20e3 * 100 ** (rng.random(n_img) ** 3), 20e3, 2e6).astype(np.int64)
    rest = max(budget - int(img_sizes.sum()) - sum(big), 1 * MIB)
    other = np.exp(rng.uniform(np.log(64), np.log(2 * MIB), n_other))
    other = np.clip(other * rest / other.sum(), 0, 8 * MIB).astype(np.int64)
    other[rng.random(n_other) < 0.01] = 0  # a few empty files, as on any disk
    users = {"ext4": ["alice", "bob"], "fat": ["Carol", "Dave"]}
    years, events = range(2015, 2024), ["holiday", "wedding", "garden", "party", "trip", "school", "misc", "phone"]
    projects = ["accounts", "shipping", "legal", "taxes", "notes", "hr", "archive", "scans", "invoices", "projects"]
    files: list[PlannedFile] = []
    n = 0

    def root(part: str, user: str) -> str:
        return f"home/{user}" if part == "ext4" else f"Users/{user}"

    for size in img_sizes:
        part = "ext4" if rnd.random() < 0.58 else "fat"
        user = rnd.choice(users[part])
        png = rnd.random() < 0.25
        ext = ".png" if png else rnd.choice((".jpg", ".jpg", ".jpeg", ".JPG"))
        if part == "fat" and rnd.random() < 0.4:
            d = f"DCIM/{100 + rnd.randrange(12)}CANON"
        else:
            d = f"{root(part, user)}/Pictures/{rnd.choice(years)}/{rnd.choice(events)}"
        files.append(PlannedFile(part, f"{d}/IMG_{n:06d}{ext}", "png" if png else "jpeg", int(size)))
        n += 1
    kinds = list(OTHER_KINDS)
    weights = [OTHER_KINDS[k][1] for k in kinds]
    for size in other:
        part = "ext4" if rnd.random() < 0.58 else "fat"
        user = rnd.choice(users[part])
        kind = rnd.choices(kinds, weights)[0]
        ext = rnd.choice(OTHER_KINDS[kind][0])
        where = {"exe": "Downloads", "binary": rnd.choice(("Downloads", ".cache/app", "AppData/Local/Temp")),
                 "mp3": "Music", "sqlite": ".config/app"}.get(kind, f"Documents/{rnd.choice(projects)}")
        files.append(PlannedFile(part, f"{root(part, user)}/{where}/{rnd.choice(WORDS)}-{n:06d}{ext}", kind, int(size)))
        n += 1
    for i, size in enumerate(big):
        part = "fat" if i % 3 == 1 else "ext4"
        user = users[part][i % 2]
        name = ("Videos/holiday-%06d.mp4", "Backup/mailbox-%06d.pst", "Downloads/disk-backup-%06d.tar")[i % 3] % n
        files.append(PlannedFile(part, f"{root(part, user)}/{name}", "mp4" if i % 3 == 0 else "binary", size))
        n += 1
    return files


def partition_layout(spec: CorpusSpec) -> dict[str, tuple[int, int]]:
    """(start, length) in bytes of the ext4 and FAT32 partitions; 1 MiB aligned."""
    disk = spec.disk_bytes
    ext_len = int(disk * EXT4_SHARE) // MIB * MIB
    fat_start = MIB + ext_len
    return {"ext4": (MIB, ext_len), "fat": (fat_start, disk - fat_start - MIB)}


# ---------------------------------------------------------------- building


def write_sources(spec: CorpusSpec, files: list[PlannedFile], src: Path) -> dict[str, int]:
    pool = picture_pool(spec.seed)
    pool_sizes = {k: [len(b) for b in v] for k, v in pool.items()}
    text = _Text(spec.seed)
    rnd = random.Random(spec.seed + 1)
    counts: dict[str, int] = {"bytes": 0}
    for i, f in enumerate(files):
        tag = b"\x00BENCH%08d\x00" % i
        if f.kind in pool:
            data = picture_bytes(pool[f.kind], pool_sizes[f.kind], f.size, tag, rnd)
        else:
            data = other_bytes(f.kind, f.size, tag, text, rnd)
        p = src / f.partition / f.rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        counts[f.kind] = counts.get(f.kind, 0) + 1
        counts["bytes"] += len(data)
    return counts


def build_image(spec: CorpusSpec, workdir: Path, log=print) -> tuple[Path, dict]:
    """The cached image for ``spec`` (built now if missing) and its manifest."""
    workdir.mkdir(parents=True, exist_ok=True)
    disk = workdir / f"{spec.key}.raw"
    manifest_path = workdir / f"{spec.key}.json"
    if disk.is_file() and manifest_path.is_file():
        return disk, json.loads(manifest_path.read_text())
    t0 = time.perf_counter()
    tmp = workdir / f".building-{spec.key}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files = plan(spec)
    layout = partition_layout(spec)
    per_part = {p: sum(f.size for f in files if f.partition == p) for p in layout}
    for p, (_, length) in layout.items():
        if per_part[p] > 0.85 * length:
            raise RuntimeError(f"corpus plan puts {per_part[p]} bytes in a {length}-byte {p} partition")
    log(f"building {disk.name}: {len(files)} files, {sum(per_part.values()) / GIB:.2f} GiB of content ...")
    counts = write_sources(spec, files, tmp / "src")
    written = counts.pop("bytes")
    t_src = time.perf_counter()
    ext_img, fat_img = tmp / "p_ext4.img", tmp / "p_fat.img"
    for img, (_, length) in ((ext_img, layout["ext4"]), (fat_img, layout["fat"])):
        with open(img, "wb") as fh:
            fh.truncate(length)
    _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "benchhome", "-E", "root_owner=0:0",
          "-d", str(tmp / "src" / "ext4"), str(ext_img)])
    _run(["mkfs.vfat", "-F", "32", "-n", "BENCHDATA", "-i", "1a2b3c4d", str(fat_img)])
    fat_src = tmp / "src" / "fat"
    _run(["mcopy", "-s", "-m", "-i", str(fat_img), *[str(p) for p in sorted(fat_src.iterdir())], "::/"])
    t_fs = time.perf_counter()
    partial = tmp / disk.name
    with open(partial, "wb") as fh:
        fh.truncate(spec.disk_bytes)
    (es, el), (fs, fl) = layout["ext4"], layout["fat"]
    _run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(partial)], stdin=(
        "label: dos\nlabel-id: 0x5eed1729\nunit: sectors\n\n"
        f"start={es // SECTOR}, size={el // SECTOR}, type=83\n"
        f"start={fs // SECTOR}, size={fl // SECTOR}, type=c\n").encode())
    for img, start in ((ext_img, es), (fat_img, fs)):
        _run(["dd", f"if={img}", f"of={partial}", "bs=4M", "conv=notrunc", "oflag=seek_bytes",
              f"seek={start}", "status=none"])
        img.unlink()
    manifest = {
        "spec": asdict(spec), "generator_version": GENERATOR_VERSION, "disk_bytes": spec.disk_bytes,
        "files": len(files), "content_bytes": written, "per_partition_bytes": per_part,
        "per_partition_files": {p: sum(1 for f in files if f.partition == p) for p in layout},
        "kinds": counts, "layout": layout, "files_over_50mib": sum(1 for f in files if f.size >= 50 * MIB),
        "build_seconds": {"sources": round(t_src - t0, 1), "filesystems": round(t_fs - t_src, 1),
                          "total": round(time.perf_counter() - t0, 1)},
    }
    os.replace(partial, disk)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(tmp)
    return disk, manifest
