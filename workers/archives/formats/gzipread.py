"""gzip: a compressed tar (``.tgz``, ``.tar.gz``) is expanded as the tar it holds, in one
level; any other gzip is one member, named by the header's FNAME when it has one
(else the archive's name without ``.gz``), with the header's MTIME (UTC seconds)."""

from __future__ import annotations

import gzip
import struct
import tarfile
import zlib
from typing import BinaryIO

from triage.workers.archives.base import ARCHIVES, ArchiveFormat, Member, Visit, ns, pump, read_chunks, text
from triage.workers.archives.formats.tarread import expand_tar

_READ_ERRORS = (gzip.BadGzipFile, zlib.error, EOFError, OSError)
FEXTRA, FNAME = 0x04, 0x08


def header(f: BinaryIO) -> tuple[str | None, int | None]:
    """(stored name, mtime) from the first member's header; (None, None) where absent."""
    f.seek(0)
    head = f.read(10)
    if len(head) < 10 or head[:2] != b"\x1f\x8b":
        return None, None
    flags, mtime = head[3], struct.unpack_from("<I", head, 4)[0]
    if flags & FEXTRA:
        xlen = f.read(2)
        f.seek(struct.unpack("<H", xlen)[0] if len(xlen) == 2 else 0, 1)
    name = None
    if flags & FNAME:
        raw = bytearray()
        while len(raw) < 4096 and (b := f.read(1)) not in (b"", b"\x00"):
            raw += b
        name = text(bytes(raw)).replace("/", "\\x2f") or None  # a name, never a path
    return name, ns(mtime)


def holds_tar(f: BinaryIO) -> bool:
    """Whether the decompressed content starts with a valid tar header (its checksum agrees)."""
    f.seek(0)
    try:
        with gzip.GzipFile(fileobj=f) as g:
            block = g.read(tarfile.BLOCKSIZE)
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        return True
    except (tarfile.TarError, *_READ_ERRORS):
        return False


@ARCHIVES.register("gzip", instance=True)
class GzipReader(ArchiveFormat):
    DESCRIPTION = "gzip: the tar inside a .tgz, else the one compressed member"
    MIMES = frozenset({"application/gzip", "application/x-gzip"})

    def expand(self, f: BinaryIO, size: int, visit: Visit, max_members: int, name: str) -> None:
        if holds_tar(f):
            f.seek(0)
            expand_tar(f, visit, "r|gz")
            return
        stored, mtime = header(f)
        base = name.rsplit("/", 1)[-1]
        inner = stored or (base[:-3] if base.lower().endswith(".gz") and len(base) > 3 else base + ".out")
        f.seek(max(0, size - 4))
        isize = int.from_bytes(f.read(4), "little")  # the trailer's size mod 2**32: a hint, the bytes decide
        sink = visit(Member(inner, isize, "r", mtime=mtime))
        if sink is None:
            return
        f.seek(0)
        with gzip.GzipFile(fileobj=f) as g:
            pump(read_chunks(g.read, _READ_ERRORS), sink)
