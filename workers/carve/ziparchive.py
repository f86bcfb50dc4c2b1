"""ZIP archives and the formats built on them (OOXML, ODF, EPUB), never decompressed.

The walk follows the local file headers by their compressed sizes (searching
for the data descriptor only for streamed entries), then parses the central
directory and the End Of Central Directory record, and requires them to agree:
EOCD entry counts equal the entries parsed, its size and offset equal where the
directory really is, and every directory entry points at a local header inside
the archive. Member data is skipped by arithmetic, so a zip bomb costs as much
as its headers. The reported type comes from member *names* in the central
directory ([Content_Types].xml plus word/, xl/, ppt/) or from a stored
``mimetype`` member (ODF, EPUB), read as the few bytes it is.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from triage.workers.carve.reader import Reader
from triage.workers.carve.registry import Carver, Match, carver
from triage.workers.carve.stream import Cursor

log = logging.getLogger(__name__)

LOCAL, CENTRAL, END = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
END64, LOCATOR64, DESCRIPTOR, SIGNATURE = b"PK\x06\x06", b"PK\x06\x07", b"PK\x07\x08", b"PK\x05\x05"
#: cap on entries, so a directory of millions of tiny headers costs bounded time
MAX_ENTRIES = 1 << 20
#: signatures looked at while searching for a streamed entry's end, before giving up
MAX_FALSE_SIGNATURES = 8
_STREAM_END = re.compile(rb"PK\x07\x08|PK\x03\x04|PK\x01\x02")
_OOXML = {b"word/": "docx", b"xl/": "xlsx", b"ppt/": "pptx"}
_MIMETYPES = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.presentation": "odp",
    b"application/vnd.oasis.opendocument.graphics": "odg",
    b"application/epub+zip": "epub",
}
#: reported type -> (extension, MIME)
KINDS = {
    "zip": ("zip", "application/zip"),
    "docx": ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "xlsx": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "pptx": ("pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    **{k: (k, v.decode()) for v, k in _MIMETYPES.items()},
}


def _u(data: bytes, at: int, size: int) -> int:
    return int.from_bytes(data[at : at + size], "little")


@carver("zip", headers=[LOCAL], max_size=1 << 30)
class ZipCarver(Carver):
    DESCRIPTION = "ZIP archive (incl. docx/xlsx/pptx, odt/ods/odp/odg, epub), checked through the EOCD record"
    EXTENSION = "zip"
    MIME = "application/zip"

    def carve(self, reader: Reader, start: int) -> int | None:
        m = self.match(reader, start)
        return None if m is None else m.length

    def match(self, reader: Reader, start: int) -> Match | None:
        cur = Cursor(reader, start, self.MAX_SIZE)
        if not _walk_local_headers(cur):
            return None
        cd_start = cur.pos
        directory = _central_directory(cur, start, cd_start)
        if directory is None or not _end_records(cur, start, cd_start, directory.count):
            return None
        kind = _kind(reader, start, directory)
        return Match(cur.pos - start, kind, *KINDS[kind])


@dataclass
class _Directory:
    count: int = 0
    content_types: bool = False
    prefixes: frozenset[bytes] = frozenset()
    first_name: bytes = b""
    first: tuple[int, int, int] = (0, 0, 0)  # method, compressed size, local header offset


def _zip64_sizes(extra: bytes, wanted: list[str]) -> dict[str, int] | None:
    """Values of the 0x0001 extra field; only the fields whose 32-bit slot was 0xFFFFFFFF appear."""
    i = 0
    while i + 4 <= len(extra):
        tag, size = _u(extra, i, 2), _u(extra, i + 2, 2)
        if tag == 0x0001:
            body = extra[i + 4 : i + 4 + size]
            if len(body) < 8 * len(wanted):
                return None
            return {name: _u(body, 8 * k, 8) for k, name in enumerate(wanted)}
        i += 4 + size
    return None


def _walk_local_headers(cur: Cursor) -> bool:
    """Walk local headers and their data to where the central directory must start."""
    count = 0
    while cur.peek(4) == LOCAL:
        count += 1
        head = cur.take(30)
        if count > MAX_ENTRIES or head is None or _u(head, 8, 2) > 99:  # method codes stop at 99 (AES)
            return False
        flags, csize, usize = _u(head, 6, 2), _u(head, 18, 4), _u(head, 22, 4)
        tail = cur.take(_u(head, 26, 2) + _u(head, 28, 2))
        if tail is None:
            return False
        zip64 = csize == 0xFFFFFFFF or usize == 0xFFFFFFFF
        if zip64:
            sizes = _zip64_sizes(tail[_u(head, 26, 2) :], ["usize", "csize"])
            if sizes is None:
                return False
            csize = sizes["csize"]
        if flags & 0x08 and csize == 0:
            if not _skip_streamed(cur):
                return False
        elif not cur.skip(csize) or (flags & 0x08 and not _skip_descriptor(cur, csize, zip64)):
            return False
    return count > 0


def _skip_descriptor(cur: Cursor, csize: int, zip64: bool) -> bool:
    """Skip the data descriptor after an entry of known size, checking its size field."""
    width = 8 if zip64 else 4
    sig = 4 if cur.peek(4) == DESCRIPTOR else 0
    body = cur.take(sig + 4 + 2 * width)
    return body is not None and _u(body, sig + 4, width) == csize


def _skip_streamed(cur: Cursor) -> bool:
    """Find the end of a streamed entry: a descriptor whose size field matches the distance.

    Gives up after :data:`MAX_FALSE_SIGNATURES` signatures that do not close the
    entry: otherwise a run of streamed headers without descriptors would make
    every candidate search to the end (quadratic), and real compressed data
    contains a stray ``PK`` signature about once per 4 GiB per signature.
    The descriptor is either signed (``PK 07 08``, then crc, sizes) or unsigned
    (crc, sizes) just before the next header; sizes are 4 bytes, or 8 in ZIP64.
    """
    data_start = cur.pos
    for tries, (offset, m) in enumerate(cur.finditer(_STREAM_END, 4)):
        if tries >= MAX_FALSE_SIGNATURES:
            return False
        signed = m.group() == DESCRIPTOR
        for width in (4, 8):
            data_end = offset if signed else offset - 4 - 2 * width
            after = offset + 8 + 2 * width if signed else offset
            if data_end < data_start or after > cur.end:
                continue
            field = cur.at(data_end + (8 if signed else 4), width)
            if field is not None and int.from_bytes(field, "little") == data_end - data_start:
                cur.pos = after
                return True
    return False


def _central_directory(cur: Cursor, start: int, cd_start: int) -> _Directory | None:
    """Parse directory entries; each must point at a local header before the directory."""
    d = _Directory()
    prefixes: set[bytes] = set()
    while cur.peek(4) == CENTRAL:
        head = cur.take(46)
        if head is None or d.count >= MAX_ENTRIES:
            return None
        nlen, xlen, clen = _u(head, 28, 2), _u(head, 30, 2), _u(head, 32, 2)
        tail = cur.take(nlen + xlen + clen)
        if tail is None:
            return None
        name, csize, offset = tail[:nlen], _u(head, 20, 4), _u(head, 42, 4)
        wide = [k for k, v in (("usize", _u(head, 24, 4)), ("csize", csize), ("offset", offset)) if v == 0xFFFFFFFF]
        if wide:
            values = _zip64_sizes(tail[nlen : nlen + xlen], wide)
            if values is None:
                return None
            csize, offset = values.get("csize", csize), values.get("offset", offset)
        if offset >= cd_start - start or cur.reader.read(start + offset, 4) != LOCAL:
            return None
        if d.count == 0:
            d.first_name, d.first = name, (_u(head, 10, 2), csize, offset)
        d.content_types = d.content_types or name == b"[Content_Types].xml"
        prefixes.update(p for p in _OOXML if name.startswith(p))
        d.count += 1
    if cur.peek(4) == SIGNATURE:  # digital signature record: part of the directory
        head = cur.take(6)
        if head is None or not cur.skip(_u(head, 4, 2)):
            return None
    d.prefixes = frozenset(prefixes)
    return d if d.count else None


def _end_records(cur: Cursor, start: int, cd_start: int, count: int) -> bool:
    """Optional ZIP64 end record and locator, then the EOCD; all must agree with the walk."""
    cd_size, cd_offset = cur.pos - cd_start, cd_start - start
    z64: dict[str, int] | None = None
    if cur.peek(4) == END64:
        at = cur.pos - start
        rec = cur.take(56)
        if rec is None or _u(rec, 4, 8) < 44 or not cur.skip(_u(rec, 4, 8) - 44):
            return False
        z64 = {
            "entries": _u(rec, 32, 8),
            "disk_entries": _u(rec, 24, 8),
            "size": _u(rec, 40, 8),
            "offset": _u(rec, 48, 8),
        }
        loc = cur.take(20)
        if loc is None or loc[:4] != LOCATOR64 or _u(loc, 8, 8) != at:
            return False
        if z64 != {"entries": count, "disk_entries": count, "size": cd_size, "offset": cd_offset}:
            return False
    end = cur.take(22)
    if end is None or end[:4] != END:
        return False

    def agrees(value: int, actual: int, sentinel: int) -> bool:
        return value == actual or (z64 is not None and value == sentinel)

    return (
        agrees(_u(end, 4, 2), 0, 0xFFFF)
        and agrees(_u(end, 6, 2), 0, 0xFFFF)
        and agrees(_u(end, 8, 2), count, 0xFFFF)
        and agrees(_u(end, 10, 2), count, 0xFFFF)
        and agrees(_u(end, 12, 4), cd_size, 0xFFFFFFFF)
        and agrees(_u(end, 16, 4), cd_offset, 0xFFFFFFFF)
        and cur.skip(_u(end, 20, 2))  # the comment must be there too
    )


def _kind(reader: Reader, start: int, d: _Directory) -> str:
    """Office/ODF/EPUB type from names and a stored ``mimetype`` member, else ``zip``."""
    if d.content_types and len(d.prefixes) == 1:
        return _OOXML[next(iter(d.prefixes))]
    method, csize, offset = d.first
    if d.first_name == b"mimetype" and method == 0 and 0 < csize <= 80:
        head = reader.read(start + offset, 30)
        if len(head) == 30:
            data = reader.read(start + offset + 30 + _u(head, 26, 2) + _u(head, 28, 2), csize)
            return _MIMETYPES.get(data.strip(), "zip")
    return "zip"
