"""A :class:`~triage.workers.carve.reader.Reader` that reads each byte of the image once per carve task.

Carving touches an object's bytes three times: the scanner's window finds its
header, the carver walks its structure (often past the window), and the digest
reads it whole for the hashes, the type and the pHash. Without a cache each of
those is a read from the image (issue #11: "carved objects reuse the scan's
knowledge instead of re-reading"). :class:`SpanCache` keeps the spans it fetched
(least recently used first, up to ``capacity`` bytes) and serves any read that
cached spans cover, joining adjacent ones; only the gaps are fetched. A span is
the bytes object the underlying reader returned, so a read equal to a fetched span
(the scanner's next window) is returned as is, without a copy.

Memory is ``capacity`` plus the read being served; a miss costs one read of the
gap (at least ``min_read`` bytes, fewer at the end of the extent). Not thread-safe:
one per task, like the reader it wraps.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict

from triage.workers.carve.reader import Reader, _check_args

#: cached bytes per task: the scan window (4 MiB) and the objects being validated and digested
DEFAULT_CAPACITY = 32 << 20
#: smallest fetch on a miss: what a carver's buffered cursor asks for anyway
DEFAULT_MIN_READ = 64 << 10
#: predecessors looked at for a span covering an offset (a longer span may start before a shorter one)
_LOOK_BACK = 4


class SpanCache:
    """Read-through cache of recently read spans over another :class:`Reader`."""

    def __init__(self, reader: Reader, capacity: int = DEFAULT_CAPACITY, min_read: int = DEFAULT_MIN_READ) -> None:
        self.reader = reader
        self.size = reader.size
        self.capacity = capacity
        self.min_read = min_read
        self._spans: OrderedDict[int, bytes] = OrderedDict()  # start -> bytes, least recently used first
        self._starts: list[int] = []                           # the same starts, sorted
        self._held = 0
        self.fetched = 0  # bytes read from the underlying reader: the image bytes this task read

    def read(self, offset: int, size: int) -> bytes:
        _check_args(offset, size)
        end = min(offset + size, self.size)
        if end <= offset:
            return b""
        pieces: list[memoryview] = []
        pos = offset
        while pos < end:
            span = self._covering(pos)
            if span is None:
                span = self._fetch(pos, end)
                if span is None:  # the underlying reader ran short: the extent ends here
                    break
            start, data = span
            if not pieces and start == offset and len(data) == end - offset:
                return data  # exactly one fetched span: no copy
            piece = memoryview(data)[pos - start : end - start]
            pieces.append(piece)
            pos += len(piece)
        return pieces[0].tobytes() if len(pieces) == 1 else b"".join(pieces)

    def view(self, offset: int, size: int) -> bytes | memoryview:
        """:meth:`read`, as a view into a cached span when one holds all of it (no copy).

        For searches and checksums over object data (``Cursor.finditer``, ``Cursor.crc32``),
        which only look at the bytes: a PDF's search for its last ``%%EOF`` reads up to
        megabytes past the object, most of them already held for the scan.
        """
        _check_args(offset, size)
        end = min(offset + size, self.size)
        span = self._covering(offset) if end > offset else None
        if span is not None and span[0] + len(span[1]) >= end:
            return memoryview(span[1])[offset - span[0] : end - span[0]]
        return self.read(offset, size)

    def _covering(self, pos: int) -> tuple[int, bytes] | None:
        """The cached span holding byte ``pos`` that reaches furthest, marked as recently used."""
        i = bisect.bisect_right(self._starts, pos)
        best: tuple[int, bytes] | None = None
        for start in self._starts[max(0, i - _LOOK_BACK) : i]:
            data = self._spans[start]
            if start + len(data) > pos and (best is None or start + len(data) > best[0] + len(best[1])):
                best = (start, data)
        if best is not None:
            self._spans.move_to_end(best[0])
        return best

    def _fetch(self, pos: int, end: int) -> tuple[int, bytes] | None:
        """Read the gap at ``pos`` up to the next cached span (or ``end``), at least ``min_read`` bytes."""
        i = bisect.bisect_right(self._starts, pos)
        gap_end = min(end, self._starts[i]) if i < len(self._starts) else end
        data = self.reader.read(pos, max(gap_end - pos, min(self.min_read, self.size - pos)))
        if not data:
            return None
        self.fetched += len(data)
        old = self._spans.pop(pos, None)
        if old is not None:  # a shorter span at the same start: replaced
            self._held -= len(old)
        else:
            bisect.insort(self._starts, pos)
        self._spans[pos] = data
        self._held += len(data)
        while self._held > self.capacity and len(self._spans) > 1:
            start, gone = self._spans.popitem(last=False)
            self._starts.remove(start)
            self._held -= len(gone)
        return pos, data
