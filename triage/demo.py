"""The sample device the project generates for itself: a small MBR disk with two
ext filesystems (allocated and deleted files, images, a lying extension), a
partition holding no filesystem, and two pictures only carving finds. Built with e2fsprogs (`mke2fs -d`, `debugfs`),
no mounting, no root; the partition table is written here. The files' contents are
the same on every build (seeded); timestamps and so the image hash are not.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
import tempfile
import zipfile
from pathlib import Path

from triage.rules.errors import TriageError

MiB = 1 << 20
SECTOR = 512
#: (start MiB, size MiB, MBR type, filesystem or None)
LAYOUT = [(1, 24, 0x83, "ext4"), (25, 12, 0x83, "ext2"), (37, 3, 0x83, None)]
DISK_MIB = 40


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/sbin:/usr/sbin")
    if path is None:
        raise TriageError(f"{name}: not found; the demo image needs e2fsprogs (apt-get install e2fsprogs)")
    return path


def _images(rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    from PIL import Image, ImageDraw

    out = []
    for i in range(n):
        img = Image.new("RGB", (160 + 16 * i, 120 + 8 * i), tuple(rng.randrange(256) for _ in range(3)))
        d = ImageDraw.Draw(img)
        for _ in range(12):
            x0, y0 = rng.randrange(img.width), rng.randrange(img.height)
            d.ellipse([x0, y0, x0 + rng.randrange(10, 80), y0 + rng.randrange(10, 80)],
                      fill=tuple(rng.randrange(256) for _ in range(3)))
        buf = io.BytesIO()
        fmt = "JPEG" if i % 2 == 0 else "PNG"
        img.save(buf, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
        out.append((f"IMG_{1000 + i}.{'jpg' if fmt == 'JPEG' else 'png'}", buf.getvalue()))
    return out


def _populate(root: Path, rng: random.Random, which: int) -> None:
    (root / "Pictures").mkdir(parents=True)
    (root / "Documents" / "notes").mkdir(parents=True)
    for name, data in _images(rng, 6 if which == 0 else 3):
        (root / "Pictures" / name).write_bytes(data)
    (root / "Documents" / "notes" / "meeting.txt").write_text("Meet at the usual place, 21:00.\n" * 20)
    (root / "Documents" / "holiday.txt").write_bytes(_images(rng, 1)[0][1])  # a JPEG that says it is text
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("ledger.csv", (2024, 1, 1, 0, 0, 0)), "date,amount\n2024-01-02,500\n")
    (root / "Documents" / "ledger.zip").write_bytes(buf.getvalue())
    (root / "Documents" / "big.bin").write_bytes(rng.randbytes(2 * MiB if which == 0 else MiB // 2))
    (root / "Documents" / "to-delete.txt").write_text("This file is deleted before seizure.\n" * 30)


def _mkfs(kind: str, src: Path, dest: Path, size_mib: int) -> None:
    env = {**os.environ, "E2FSPROGS_FAKE_TIME": "1700000000"}
    subprocess.run([_tool("mke2fs"), "-q", "-F", "-t", kind, "-b", "1024", "-U", "4b1d0b6e-0000-4000-8000-000000000001",
                    "-E", "hash_seed=4b1d0b6e-0000-4000-8000-000000000002", "-d", str(src), str(dest), f"{size_mib}M"],
                   check=True, capture_output=True, env=env)
    subprocess.run([_tool("debugfs"), "-w", "-R", "rm /Documents/to-delete.txt", str(dest)],
                   check=True, capture_output=True, env=env)


def _mbr() -> bytes:
    entries = b""
    for start, size, ptype, _ in LAYOUT:
        lba, count = start * MiB // SECTOR, size * MiB // SECTOR
        entries += struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", ptype, b"\xfe\xff\xff", lba, count)
    entries += b"\x00" * 16 * (4 - len(LAYOUT))
    return b"\x00" * 440 + struct.pack("<I", 0x7E1A6E00) + b"\x00\x00" + entries + b"\x55\xaa"


def build_sample(dest: Path) -> Path:
    """Write the sample disk image to ``dest`` (replacing it) and return its path."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261125)
    with tempfile.TemporaryDirectory(prefix="triage-demo-") as tmp:
        tmpd = Path(tmp)
        disk = tmpd / "disk.dd"
        with disk.open("wb") as f:
            f.truncate(DISK_MIB * MiB)
            f.write(_mbr())
        # deleted evidence that only carving finds: a picture in the gap before the first
        # partition, and one inside the partition that holds no filesystem
        planted = _images(random.Random(7), 2)
        with disk.open("r+b") as f:
            f.seek(512 * 1024)
            f.write(planted[0][1])
            f.seek(LAYOUT[2][0] * MiB + 64 * 1024)
            f.write(planted[1][1])
        for which, (start, size, _, fs) in enumerate(LAYOUT):
            if fs is None:
                continue
            src = tmpd / f"src{which}"
            _populate(src, rng, which)
            part = tmpd / f"part{which}.img"
            _mkfs(fs, src, part, size)
            with part.open("rb") as p, disk.open("r+b") as f:
                f.seek(start * MiB)
                shutil.copyfileobj(p, f, MiB)
        os.replace(disk, dest)
    return dest
