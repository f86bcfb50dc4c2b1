"""PDF from ``%PDF-1.x`` to its last valid ``%%EOF``.

A PDF's end is not marked uniquely: incremental updates append more sections,
each ending in ``startxref N %%EOF``. An ``%%EOF`` counts only if ``startxref``
precedes it and ``N`` (relative to our header) lands on ``xref`` or an
``n g obj`` (an xref stream) inside the object, so the EOF of a different,
headerless PDF lying further on does not extend ours. The search stops at the
next ``%PDF-`` header, at the 64 MiB cap, or :data:`UPDATE_GAP` bytes after the
last valid EOF, so a PDF in front of gigabytes of unrelated data costs a bounded
read, not the cap every time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from triage.workers.carve.reader import Reader
from triage.workers.carve.registry import Carver, carver
from triage.workers.carve.scanner import finder
from triage.workers.carve.stream import Cursor

log = logging.getLogger(__name__)

HEADER = re.compile(rb"%PDF-[12]\.[0-9]")
#: an EOF or the header of the next document, whichever comes first; searched for with the scanner's
#: one-pass literal matcher (Hyperscan), 3x the speed of a regex alternation: after each valid EOF the
#: search goes on for up to UPDATE_GAP bytes, so this was most of the PDF carver's time on a dense device
_EOF, _NEXT = b"%%EOF", b"%PDF-"
_STARTXREF = re.compile(rb"startxref\s{1,8}([0-9]{1,10})\s{0,8}\Z")
_XREF_TARGET = re.compile(rb"\s{0,8}(?:xref|[0-9]{1,10}\s{1,8}[0-9]{1,5}\s{1,8}obj)")
#: how far past a valid EOF an incremental update may still end
UPDATE_GAP = 4 << 20


@carver("pdf", headers=[b"%PDF-"], max_size=64 << 20)
class PdfCarver(Carver):
    DESCRIPTION = "PDF document (incl. incremental updates), ending at the last valid %%EOF"
    EXTENSION = "pdf"
    MIME = "application/pdf"

    def carve(self, reader: Reader, start: int) -> int | None:
        cur = Cursor(reader, start, self.MAX_SIZE)
        header = cur.take(8)
        if header is None or HEADER.fullmatch(header) is None:
            return None
        best: int | None = None
        limit = cur.end
        restart = True
        while restart:  # a new, shorter search after each valid EOF: the update gap bounds it
            restart = False
            for offset, mark in _marks(cur, limit):
                if mark == _NEXT:
                    break  # the next document starts here; ours ended before it
                if _eof_ok(cur, start, offset):
                    best = offset + 5 + _eol(cur, offset + 5)
                    limit = min(cur.end, best + UPDATE_GAP)
                    cur.pos, restart = offset + 5, True
                    break
        return None if best is None else best - start


def _marks(cur: Cursor, limit: int) -> Iterator[tuple[int, bytes]]:
    """Each ``%%EOF`` and ``%PDF-`` from the cursor to ``limit``, in order (neither can overlap the other
    or itself, so these are the matches a regex alternation would find)."""
    marks = finder((_EOF, _NEXT))
    nxt = cur.pos
    for w, buf in cur.windows(5, limit):
        for at, mark in marks.find(buf, len(buf)):
            if w + at >= nxt:
                nxt = w + at + 1
                yield w + at, mark


def _eof_ok(cur: Cursor, start: int, offset: int) -> bool:
    """``%%EOF`` at ``offset`` is preceded by ``startxref N`` with N pointing at an xref."""
    lo = max(start, offset - 40)
    tail = cur.at(lo, offset - lo)
    m = _STARTXREF.search(tail) if tail is not None else None
    if m is None:
        return False
    xref = start + int(m.group(1))
    if not start + 8 <= xref < lo + m.start():
        return False
    target = cur.at(xref, min(40, cur.end - xref))
    return target is not None and _XREF_TARGET.match(target) is not None


def _eol(cur: Cursor, offset: int) -> int:
    """Length of the end-of-line that belongs to ``%%EOF`` (CRLF, CR, LF or none)."""
    two = cur.at(offset, 2) or cur.at(offset, 1) or b""
    if two.startswith(b"\r\n"):
        return 2
    return 1 if two[:1] in (b"\r", b"\n") else 0
