"""SQLite 3 database files: the 100-byte header, then a bounded b-tree walk.

The header alone gives the length (page size x in-header page count), but only
when the file-format rules say that count is valid: nonzero and the change
counter equal to version-valid-for. The header cannot tell a whole database from
one whose tail was overwritten by zeros or other data, so the carver also walks
the b-trees reachable from the schema (page 1): every interior and leaf page
must carry a well-formed b-tree page header of the right family, with children
and cell pointers in range. The walk stops after :data:`MAX_VERIFY_PAGES` pages,
so a huge database costs a bounded read; pages beyond that are accepted unseen.
Overflow, freelist and pointer-map pages have free-form content and are not checked.
"""

from __future__ import annotations

import logging
import struct

from triage.workers.carve.reader import Reader
from triage.workers.carve.registry import Carver, carver

log = logging.getLogger(__name__)

MAGIC = b"SQLite format 3\x00"
#: b-tree pages verified per database at most (about 16 MiB at 4 KiB pages)
MAX_VERIFY_PAGES = 4096
#: databases up to this size are read in one call for the walk (pages are then slices of it)
WHOLE_READ = 4 << 20
TABLE_INTERIOR, TABLE_LEAF, INDEX_INTERIOR, INDEX_LEAF = 5, 13, 2, 10
_CHILDREN = {TABLE_INTERIOR: {TABLE_INTERIOR, TABLE_LEAF}, INDEX_INTERIOR: {INDEX_INTERIOR, INDEX_LEAF}}
#: bytes taken by a record value of each fixed-size serial type
_FIXED = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8, 7: 8, 8: 0, 9: 0}


@carver("sqlite", headers=[MAGIC], max_size=1 << 30)
class SqliteCarver(Carver):
    DESCRIPTION = "SQLite 3 database (in-header size, b-trees checked)"
    EXTENSION = "sqlite"
    MIME = "application/vnd.sqlite3"

    def carve(self, reader: Reader, start: int) -> int | None:
        header = reader.read(start, 100)
        geometry = _header(header)
        if geometry is None:
            return None
        page_size, pages, usable = geometry
        length = page_size * pages
        if length > self.MAX_SIZE or start + length > reader.size:
            return None
        db = _Db(reader, start, page_size, pages, usable)
        return length if db.verify() else None


def _header(h: bytes) -> tuple[int, int, int] | None:
    """(page size, page count, usable bytes per page) if the header obeys the file-format rules."""
    if len(h) < 100 or h[:16] != MAGIC:
        return None
    raw = int.from_bytes(h[16:18], "big")
    page_size = 65536 if raw == 1 else raw
    if not (512 <= page_size <= 65536 and page_size & (page_size - 1) == 0):
        return None
    usable = page_size - h[20]
    pages = int.from_bytes(h[28:32], "big")
    change_counter, valid_for = h[24:28], h[92:96]
    version = int.from_bytes(h[96:100], "big")
    ok = (
        h[18] in (1, 2)
        and h[19] in (1, 2)
        and usable >= 480
        and h[21:24] == b"\x40\x20\x20"  # payload fractions are fixed at 64, 32, 32
        and pages > 0
        and change_counter == valid_for  # otherwise the in-header size is stale
        and int.from_bytes(h[32:36], "big") <= pages  # first freelist trunk page
        and int.from_bytes(h[36:40], "big") < pages  # freelist page count
        and int.from_bytes(h[44:48], "big") <= 4  # schema format
        and int.from_bytes(h[56:60], "big") <= 3  # text encoding
        and h[72:92] == bytes(20)  # reserved for expansion, must be zero
        and 3_000_000 <= version < 4_000_000
    )
    return (page_size, pages, usable) if ok else None


def _varint(data: bytes, i: int) -> tuple[int, int] | None:
    """SQLite varint at ``i``: (value, next index), or None if it runs off ``data``."""
    value = 0
    for k in range(9):
        if i + k >= len(data):
            return None
        b = data[i + k]
        if k == 8:
            return (value << 8) | b, i + 9
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, i + k + 1
    return None


class _Db:
    """One bounded verification walk over a candidate database's b-trees.

    Pages are addressed as (buffer, offset of the page in it), not sliced: most
    pages are leaves whose header and cell-pointer array are all the walk reads,
    and a 4 KiB copy per page was a third of the walk's cost.
    """

    def __init__(self, reader: Reader, start: int, page_size: int, pages: int, usable: int) -> None:
        self.reader, self.start, self.page_size, self.pages, self.usable = reader, start, page_size, pages, usable
        self.budget = MAX_VERIFY_PAGES
        self.seen: set[int] = set()
        # a database the walk may read whole is read in one call, its pages addressed inside it
        length = page_size * pages
        self.whole = reader.read(start, length) if length <= WHOLE_READ else None

    def page(self, number: int) -> tuple[bytes, int]:
        """The buffer holding page ``number`` and the page's offset in it."""
        at = (number - 1) * self.page_size
        if self.whole is not None:
            return self.whole, at
        return self.reader.read(self.start + at, self.page_size), 0

    def verify(self) -> bool:
        roots: list[int] = []
        if not self._walk(1, {TABLE_INTERIOR, TABLE_LEAF}, roots):
            return False
        for root in roots:
            if root in self.seen:
                continue
            if not 2 <= root <= self.pages:
                return False
            if not self._walk(root, {TABLE_INTERIOR, TABLE_LEAF, INDEX_INTERIOR, INDEX_LEAF}, None):
                return False
        return True

    def _walk(self, root: int, kinds: set[int], roots: list[int] | None) -> bool:
        """Depth-first over one b-tree; schema leaf cells add their root pages to ``roots``."""
        stack = [(root, kinds)]
        seen, pages, usable, page_size = self.seen, self.pages, self.usable, self.page_size
        while stack:
            if self.budget <= 0:
                return True  # verified as far as the budget goes
            number, allowed = stack.pop()
            if number in seen or not 1 <= number <= pages:
                return False  # a cycle, or a child outside the file
            seen.add(number)
            self.budget -= 1
            buf, base = self.page(number)
            if base + page_size > len(buf):
                return False  # the page is not all there
            parsed = _page(buf, base, 100 if number == 1 else 0, usable)
            if parsed is None or parsed[0] not in allowed:
                return False
            kind, cells, right = parsed
            if kind in _CHILDREN:
                below = _CHILDREN[kind]
                stack.extend((child, below) for child in _children(buf, base, cells))
                stack.append((right, below))
            elif roots is not None:
                page = buf[base : base + page_size]
                roots.extend(r for r in (_schema_root(page, c, usable) for c in cells) if r)
        return True


#: type, first freeblock, cell count, content area start, fragmented bytes of a b-tree page header
_HEADER = struct.Struct(">BHHHB")


def _page(buf: bytes, base: int, at: int, usable: int) -> tuple[int, tuple[int, ...], int] | None:
    """(type, cell offsets, right child) of a well-formed b-tree page header ``at`` bytes into the
    page that starts at ``base`` in ``buf`` (the whole page is in ``buf``)."""
    kind, freeblock, ncells, content, fragmented = _HEADER.unpack_from(buf, base + at)
    if kind not in _KINDS:
        return None
    hsize = 12 if kind in _CHILDREN else 8
    content = content or 65536
    end = at + hsize + 2 * ncells
    if end > usable or not end <= content <= usable or fragmented > 60:
        return None
    if freeblock and not content <= freeblock < usable:
        return None
    # one C-level unpack of the cell pointer array: this check runs on every page of every
    # candidate database, and was most of the carving CPU on a device full of small databases
    cells = struct.unpack_from(f">{ncells}H", buf, base + at + hsize)
    if cells and not (content <= min(cells) and max(cells) < usable - 3):
        return None
    right = int.from_bytes(buf[base + at + 8 : base + at + 12], "big") if hsize == 12 else 0
    return kind, cells, right


def _children(buf: bytes, base: int, cells: tuple[int, ...]) -> list[int]:
    """The left-child page numbers of an interior page's cells (each cell starts with one)."""
    return [_CHILD.unpack_from(buf, base + c)[0] for c in cells]


_CHILD = struct.Struct(">I")
_KINDS = frozenset((TABLE_INTERIOR, TABLE_LEAF, INDEX_INTERIOR, INDEX_LEAF))


def _schema_root(page: bytes, cell: int, usable: int) -> int | None:
    """``rootpage`` of an sqlite_schema row (its 4th column), when it lies in the local payload."""
    head = _varint(page, cell)
    rowid = _varint(page, head[1]) if head else None
    if head is None or rowid is None:
        return None
    payload, i = head[0], rowid[1]
    local = payload
    if payload > usable - 35:  # the rest is on overflow pages
        m = (usable - 12) * 32 // 255 - 23
        k = m + (payload - m) % (usable - 4)
        local = k if k <= usable - 35 else m
    record = page[i : i + local]
    hdr = _varint(record, 0)
    if hdr is None:
        return None
    types: list[int] = []
    j = hdr[1]
    while j < min(hdr[0], len(record)) and len(types) < 4:
        t = _varint(record, j)
        if t is None:
            return None
        types.append(t[0])
        j = t[1]
    if len(types) < 4 or types[3] not in _FIXED or any(t in (10, 11) for t in types):
        return None
    offset = hdr[0] + sum(_FIXED.get(t, (t - 12) // 2) for t in types[:3])
    size = _FIXED[types[3]]
    if types[3] in (8, 9):
        return types[3] - 8 or None
    if size == 0 or offset + size > len(record) or types[3] == 7:
        return None
    return int.from_bytes(record[offset : offset + size], "big", signed=True)
