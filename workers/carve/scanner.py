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

import functools
import logging
import threading
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


class HeaderFinder:
    """Every occurrence of every header in a buffer, in one pass, sorted by (offset, header).

    With Hyperscan (the ``hyperscan`` wheel bundles the library) the headers are
    compiled once per process into one literal-matching database, which scans
    random data at several GiB/s per core whatever the number of headers; a
    match costs one Python callback, and headers are rare outside the objects
    they start. Without it (a platform without a wheel, a CPU Hyperscan refuses),
    one C-speed ``bytes.find`` pass per header gives the same answer more slowly.
    """

    def __init__(self, headers: Iterable[bytes]) -> None:
        self.headers = tuple(sorted(set(headers)))
        self._db = _hyperscan_db(self.headers)
        self._local = threading.local()  # Hyperscan scratch space is per thread

    @property
    def engine(self) -> str:
        return "hyperscan" if self._db is not None else "find"

    def find(self, buf: bytes | memoryview, stop: int) -> list[tuple[int, bytes]]:
        """``(offset, header)`` for each header starting before ``stop`` in ``buf``."""
        if self._db is None:
            data = buf if isinstance(buf, bytes) else bytes(buf)  # a carver's search window may be a view
            return sorted(h for header in self.headers for h in _header_hits(data, stop, header))
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            import hyperscan

            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        hits: list[tuple[int, bytes]] = []
        headers = self.headers

        def on_match(i: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            at = to - len(headers[i])
            if at < stop:
                hits.append((at, headers[i]))

        self._db.scan(buf, match_event_handler=on_match, scratch=scratch)
        hits.sort()
        return hits


def _hyperscan_db(headers: tuple[bytes, ...]):
    """A compiled literal database for ``headers``, or None when Hyperscan is not usable here."""
    try:
        import hyperscan

        db = hyperscan.Database()
        # every byte as a \xNN escape: the bindings pass expressions as C strings, so a literal
        # with a NUL byte ("SQLite format 3\0") would be cut short; fixed-length patterns, so
        # the start of a match is its end minus the header's length
        patterns = [b"".join(b"\\x%02x" % b for b in h) for h in headers]
        db.compile(expressions=patterns, ids=list(range(len(headers))))
    except (ImportError, OSError) as exc:
        log.info("header scan without Hyperscan (%s): one find pass per header", exc)
        return None
    except Exception as exc:  # noqa: BLE001 - hyperscan.error / ArchitectureError on a CPU it refuses
        log.info("header scan without Hyperscan (%s: %s): one find pass per header", type(exc).__name__, exc)
        return None
    return db


@functools.cache
def finder(headers: tuple[bytes, ...]) -> HeaderFinder:
    """One :class:`HeaderFinder` per header set and process: the database compiles once."""
    return HeaderFinder(headers)


def _header_hits(buf: bytes, stop: int, header: bytes) -> Iterator[tuple[int, bytes]]:
    """Offsets (in ``buf``) where ``header`` starts before ``stop``; C-speed find."""
    i = buf.find(header, 0, stop + len(header) - 1)
    while i != -1 and i < stop:
        yield i, header
        i = buf.find(header, i + 1, stop + len(header) - 1)


@functools.lru_cache(maxsize=4)  # a window's length, the last window's, a short extent's
def _zeros(n: int) -> bytes:
    return bytes(n)


def all_zero(buf: bytes) -> bool:
    """True for wiped or never-written space; memcmp stops at the first non-zero byte."""
    return not buf or (buf[0] == 0 and buf == _zeros(len(buf)))


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
    return list(iter_scan(reader, start, end, overlap, carvers, window=window))


def iter_scan(
    reader: Reader,
    start: int = 0,
    end: int | None = None,
    overlap: int = 0,
    carvers: Iterable[str] | None = None,
    *,
    window: int = DEFAULT_WINDOW,
) -> Iterator[Carved]:
    """:func:`scan`, one object at a time as it is found, so the caller digests it while its bytes
    are still the ones just scanned and validated (with a :class:`~triage.workers.carve.spancache.
    SpanCache` reader: without reading them from the image again)."""
    end = reader.size if end is None else min(end, reader.size)
    if start < 0 or overlap < 0 or window <= 0:
        raise TriageError(f"scan: invalid range (start={start}, overlap={overlap}, window={window})")
    selected = registry.resolve(carvers)
    by_header: dict[bytes, list[Carver]] = {}
    for c in selected:
        for h in c.HEADERS:
            by_header.setdefault(h, []).append(c)
    if not by_header or start >= end:
        return
    lookahead = max(len(h) for h in by_header) - 1
    headers = finder(tuple(sorted(by_header)))

    found = 0
    resume = max(0, start - overlap)  # next offset a candidate may start at
    w = resume
    while w < end:
        wend = min(w + window, end)
        buf = reader.read(w, wend - w + lookahead)
        if all_zero(buf):
            # wiped or never-written space: no header starts with a zero byte, so nothing to find
            w = max(wend, resume)
            continue
        for at, header in headers.find(buf, wend - w):
            offset = w + at
            if offset < resume:
                continue
            hit = _validate(reader, offset, by_header[header])
            if hit is None:
                continue
            if offset >= start:
                found += 1
                yield hit
            resume = hit.end
            if resume >= wend:
                break
        w = max(wend, resume)
    log.debug("scan [%d, %d) overlap %d: %d objects", start, end, overlap, found)


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
