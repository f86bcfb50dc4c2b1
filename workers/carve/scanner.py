"""Find carvable objects in one chunk ``[start, end)`` of an extent.

The lead splits an extent into adjacent chunks, one task each. For every chunk
the scanner searches bounded windows for the registered headers, asks the
matching carver to validate the candidate (the carver may read past ``end``, up
to its type's ``MAX_SIZE``), and reports an object only if its *start* lies in
``[start, end)``. So chunks ``[a, b)`` and ``[b, c)`` together report each object
exactly once, and an object straddling ``b`` is reported by the chunk it starts in.

Nesting: once an object is found the scan resumes after its end, so objects
embedded in it (the EXIF thumbnail inside a JPEG, members stored in a ZIP, JPEG
streams inside a PDF, BLOBs in an SQLite file) are not reported separately; they
are part of the carved container, which later stages can open. An embedded object
*is* reported when its container fails validation (e.g. the thumbnail of a
truncated JPEG), because then it is the largest valid object at that place.

``overlap`` is a look-back: the scan starts ``overlap`` bytes before ``start``
(reporting nothing there) so that an object which begins in the previous chunk
and covers ``start`` also hides its embedded objects in this chunk, giving the
same answer as one scan over the whole extent whenever ``overlap`` is at least
the size of such straddling containers.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from triage.rules.errors import TriageError
from triage.workers.carve import registry
from triage.workers.carve.reader import Reader
from triage.workers.carve.registry import Carver

log = logging.getLogger(__name__)

#: bytes searched for headers per read; memory per scan is about one window
DEFAULT_WINDOW = 4 << 20


@dataclass(frozen=True)
class Carved:
    """One carved object: ``offset`` and ``length`` in bytes relative to the reader's extent."""

    offset: int
    length: int
    type: str
    extension: str
    mime: str

    def __post_init__(self) -> None:
        if not (isinstance(self.offset, int) and self.offset >= 0):
            raise TriageError(f"invalid Carved: offset must be an int >= 0, not {self.offset!r}")
        if not (isinstance(self.length, int) and self.length > 0):
            raise TriageError(f"invalid Carved: length must be an int > 0, not {self.length!r}")
        for name in ("type", "extension", "mime"):
            if not (isinstance(getattr(self, name), str) and getattr(self, name)):
                raise TriageError(f"invalid Carved: {name} must be a non-empty str")

    @property
    def end(self) -> int:
        return self.offset + self.length


def _header_hits(buf: bytes, base: int, limit: int, header: bytes) -> Iterator[tuple[int, bytes]]:
    """Offsets (absolute) where ``header`` starts in ``buf`` before ``limit``; C-speed find."""
    stop = limit - base
    i = buf.find(header, 0, stop + len(header) - 1)
    while i != -1 and i < stop:
        yield base + i, header
        i = buf.find(header, i + 1, stop + len(header) - 1)


def scan(
    reader: Reader,
    start: int = 0,
    end: int | None = None,
    overlap: int = 0,
    carvers: Iterable[str] | None = None,
    *,
    window: int = DEFAULT_WINDOW,
) -> list[Carved]:
    """Carve the objects that start in ``[start, end)`` of ``reader``, sorted by offset.

    ``carvers`` selects carver names (all registered when None); an unknown name
    raises :class:`~triage.workers.carve.registry.UnknownCarverError`. Where
    several carvers' headers match at one offset they are tried in name order
    and the first that validates wins, so the output is deterministic. Memory is
    about ``window`` plus one carver's bounded buffers, whatever the extent size.
    """
    end = reader.size if end is None else min(end, reader.size)
    if start < 0 or overlap < 0 or window <= 0:
        raise TriageError(f"scan: invalid range (start={start}, overlap={overlap}, window={window})")
    selected = registry.resolve(carvers)
    by_header: dict[bytes, list[Carver]] = {}
    for c in selected:
        for h in c.HEADERS:
            by_header.setdefault(h, []).append(c)
    if not by_header or start >= end:
        return []
    lookahead = max(len(h) for h in by_header) - 1

    found: list[Carved] = []
    resume = max(0, start - overlap)  # next offset a candidate may start at
    w = resume
    while w < end:
        wend = min(w + window, end)
        buf = reader.read(w, wend - w + lookahead)
        if buf.count(0) == len(buf):
            # wiped or never-written space: no header starts with a zero byte, so nothing to
            # find; one C-speed count instead of a search per header
            w = max(wend, resume)
            continue
        hits = heapq.merge(*(_header_hits(buf, w, wend, h) for h in sorted(by_header)))
        for offset, header in hits:
            if offset < resume:
                continue
            hit = _validate(reader, offset, by_header[header])
            if hit is None:
                continue
            if offset >= start:
                found.append(hit)
            resume = hit.end
            if resume >= wend:
                break
        w = max(wend, resume)
    log.debug("scan [%d, %d) overlap %d: %d objects", start, end, overlap, len(found))
    return found


def _validate(reader: Reader, offset: int, candidates: list[Carver]) -> Carved | None:
    """The first carver (in name order) that accepts ``offset``, as a :class:`Carved`."""
    for c in candidates:
        m = c.match(reader, offset)
        if m is None:
            continue
        if not (0 < m.length <= c.MAX_SIZE and offset + m.length <= reader.size):
            # a carver bug, not an evidence problem: drop the hit rather than report garbage
            log.warning("carver %s returned out-of-bounds length %d at offset %d", c.NAME, m.length, offset)
            continue
        return Carved(offset, m.length, m.type, m.extension, m.mime)
    return None
