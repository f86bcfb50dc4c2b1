"""Members of a zip whose central directory is gone (a truncated copy), found by their local headers.

``zipfile`` needs the central directory at the end of the file; a zip cut short
(an interrupted download or copy of an extraction) has none, yet every member
before the cut is intact behind its local header. This walks the local headers
from the start, each giving the name, sizes and where the data lies, and stops at
the first thing that is not a local header, or a member whose sizes only a data
descriptor after its data would give (bit 3: its end cannot be found without
inflating it). Stored and deflated members are read back; others are named,
not read.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from triage.rules.errors import FilesystemError

LOCAL = b"PK\x03\x04"
HEADER = struct.Struct("<4sHHHHHIIIHH")  # signature, version, flags, method, time, date, crc, csize, usize, n, m
STORED, DEFLATED = 0, 8


@dataclass(frozen=True)
class LocalMember:
    raw: bytes       # name bytes as stored
    flags: int
    method: int
    dos: tuple[int, int]  # (time, date) as stored
    csize: int
    usize: int
    data: int        # offset of the (compressed) data in the file
    extra: bytes


def scan(fd: int, size: int) -> tuple[list[LocalMember], str]:
    """The members found by their local headers, and why the scan stopped."""
    out: list[LocalMember] = []
    pos = 0
    while pos + HEADER.size <= size:
        head = os.pread(fd, HEADER.size, pos)
        if head[:4] != LOCAL:
            return out, "end of the local headers"
        _sig, _ver, flags, method, t, d, _crc, csize, usize, n, m = HEADER.unpack(head)
        tail = os.pread(fd, n + m, pos + HEADER.size)
        if len(tail) < n + m:
            return out, f"cut inside the header of member {len(out) + 1}"
        if flags & 0x8 and csize == 0:
            return out, f"member {len(out) + 1} gives its size only after its data; not followed further"
        data = pos + HEADER.size + n + m
        out.append(LocalMember(tail[:n], flags, method, (t, d), csize, usize, data, tail[n:]))
        pos = data + csize
    return out, "end of file"


def dos_time(t: int, d: int) -> tuple[int, int, int, int, int, int]:
    return ((d >> 9) + 1980, (d >> 5) & 0xF, d & 0x1F, t >> 11, (t >> 5) & 0x3F, (t & 0x1F) * 2)


def reader(fd: int, m: LocalMember, what: str) -> Callable[[int, int], bytes]:
    """Read a recovered member sequentially (stored: straight; deflated: inflated as it goes)."""
    if m.flags & 0x1:
        raise FilesystemError(f"{what} is encrypted (password-protected), not read")
    if m.method not in (STORED, DEFLATED):
        raise FilesystemError(f"{what}: compression method {m.method} not supported")
    inflate = zlib.decompressobj(-15) if m.method == DEFLATED else None
    state = {"in": 0, "pending": b""}

    def read(pos: int, n: int) -> bytes:
        if inflate is None:
            data = os.pread(fd, min(n, m.csize - pos), m.data + pos) if pos < m.csize else b""
        else:
            out = bytearray(state["pending"])
            try:
                while len(out) < n and state["in"] < m.csize:
                    chunk = os.pread(fd, min(1 << 20, m.csize - state["in"]), m.data + state["in"])
                    if not chunk:
                        break
                    state["in"] += len(chunk)
                    out += inflate.decompress(chunk)
            except zlib.error as exc:
                raise FilesystemError(f"{what}: {exc}") from exc
            data, state["pending"] = bytes(out[:n]), bytes(out[n:])
        if not data and pos < m.usize:
            raise FilesystemError(f"{what} ends at byte {pos} of {m.usize} (source truncated)")
        return data

    return read
