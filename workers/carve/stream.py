"""A bounded forward cursor over a :class:`Reader`, shared by the carvers.

Every carve attempt gets one :class:`Cursor` whose ``end`` is the smaller of the
extent end and ``start + max_size``. All reads go through it, so no length field
in the evidence can make a carver read (or allocate) past its type's cap: a
field claiming gigabytes simply runs into ``end`` and the attempt returns None.
Reads are buffered in small blocks because parsers ask for a few bytes at a time;
searches and checksums stream in bounded windows.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

from triage.workers.carve.reader import Reader

#: bytes fetched per buffer refill for small structured reads
BLOCK = 64 << 10
#: window size for searches and checksums over object data
WINDOW = 1 << 20
#: largest single structured read a carver may ask for (guards against carver bugs)
MAX_TAKE = 1 << 20


class Cursor:
    """Sequential reads in ``[pos, end)`` with cheap skips; ``None`` means "ran out of object"."""

    def __init__(self, reader: Reader, start: int, max_size: int) -> None:
        self.reader = reader
        self.start = start
        self.end = max(start, min(reader.size, start + max_size))
        self.pos = start
        self._buf = b""
        self._buf_off = start
        # searches and checksums only look at bytes: a reader that can lend a view (SpanCache,
        # BytesReader) saves copying each window; structured reads stay bytes (carvers slice them)
        self._look = getattr(reader, "view", reader.read)

    def _get(self, off: int, n: int) -> bytes | None:
        rel = off - self._buf_off
        if rel >= 0 and n >= 0 and rel + n <= len(self._buf) and off + n <= self.end:
            return self._buf[rel : rel + n]  # the common case: inside the block already read
        if off < self.start or n < 0 or off + n > self.end:
            return None
        if n > MAX_TAKE:
            raise ValueError(f"structured read of {n} bytes exceeds MAX_TAKE; stream it instead")
        self._buf = self.reader.read(off, min(max(n, BLOCK), self.end - off))
        self._buf_off = off
        data = self._buf[:n]
        return data if len(data) == n else None

    def at(self, off: int, n: int) -> bytes | None:
        """``n`` bytes at absolute ``off`` inside the object's bounds, without moving."""
        return self._get(off, n)

    def peek(self, n: int) -> bytes | None:
        return self._get(self.pos, n)

    def take(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes at the cursor, advancing; None if they pass ``end``."""
        data = self._get(self.pos, n)
        if data is not None:
            self.pos += n
        return data

    def byte(self) -> int | None:
        data = self.take(1)
        return None if data is None else data[0]

    def skip(self, n: int) -> bool:
        """Advance without reading; False (cursor unchanged) if that passes ``end``."""
        if n < 0 or self.pos + n > self.end:
            return False
        self.pos += n
        return True

    def windows(self, longest: int, limit: int | None = None) -> Iterator[tuple[int, bytes | memoryview]]:
        """``(offset, bytes)`` windows from the cursor to ``limit`` (default ``end``), for searches.

        Windows grow from :data:`BLOCK` to :data:`WINDOW` bytes (most searches end
        close by) and overlap by ``longest - 1``, so a match of up to ``longest``
        bytes across a window edge lies whole in one of them; memory stays one window
        whatever the object size. A window may be a view (see ``_look``): search it,
        do not keep it.
        """
        stop = self.end if limit is None else min(limit, self.end)
        w = self.pos
        size = BLOCK
        while w < stop:
            buf = self._look(w, min(size, stop - w))
            size = min(WINDOW, size * 2)
            if not buf:
                return
            yield w, buf
            if w + len(buf) >= stop:
                return
            w += max(1, len(buf) - (longest - 1))

    def finditer(
        self, pattern: re.Pattern[bytes], longest: int, limit: int | None = None
    ) -> Iterator[tuple[int, re.Match[bytes]]]:
        """Matches at or after the cursor ending before ``limit`` (default ``end``), in order.

        Yields each match's absolute offset and the match (groups stay usable), each
        once although :meth:`windows` overlap. Moving the cursor while iterating does
        not affect the iteration.
        """
        nxt = self.pos
        for w, buf in self.windows(longest, limit):
            for m in pattern.finditer(buf):
                offset = w + m.start()
                if offset >= nxt:
                    nxt = offset + 1
                    yield offset, m

    def search(
        self, pattern: re.Pattern[bytes], longest: int, limit: int | None = None
    ) -> tuple[int, re.Match[bytes]] | None:
        """The first of :meth:`finditer`, or None.

        Looks first in the block the cursor already holds (a JPEG's entropy-coded
        data of tens of KB usually ends there), without another read. A match found
        there is the first one only if it starts at least ``longest`` bytes before the
        block's end (or the block reaches ``limit``): an earlier match (of at most
        ``longest`` bytes) would then lie whole in the block too. Otherwise, or with
        no match in the block, the windowed search decides.
        """
        stop = self.end if limit is None else min(limit, self.end)
        rel, buf = self.pos - self._buf_off, self._buf
        if 0 <= rel < len(buf):
            avail = min(len(buf), stop - self._buf_off)
            m = pattern.search(buf, rel, avail)
            if m is not None and (m.start() + longest <= avail or self._buf_off + avail >= stop):
                return self._buf_off + m.start(), m
        return next(self.finditer(pattern, longest, limit), None)

    def crc32(self, n: int, crc: int) -> int | None:
        """Advance over ``n`` bytes folding them into ``crc``; None if they pass ``end``."""
        if n < 0 or self.pos + n > self.end:
            return None
        pos, stop = self.pos, self.pos + n
        while pos < stop:
            piece = self._look(pos, min(WINDOW, stop - pos))
            if not piece:
                return None
            crc = zlib.crc32(piece, crc)
            pos += len(piece)
        self.pos = stop
        return crc
