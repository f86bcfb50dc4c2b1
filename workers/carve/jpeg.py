"""JPEG (JFIF/EXIF, baseline, progressive, lossless) by walking its marker structure.

A header/footer carver would end a JPEG at the first ``FF D9``, which is wrong for
any image with an EXIF thumbnail (its EOI comes first). Walking the segments by
their lengths skips the thumbnail inside APP1; the entropy-coded data after each
SOS is scanned for the next real marker (``FF 00`` stuffing, ``RSTn`` and fill
bytes are part of the data). A progressive JPEG is several SOS scans with tables
in between, which the same loop handles.
"""

from __future__ import annotations

import logging
import re

from triage.workers.carve.reader import Reader
from triage.workers.carve.registry import Carver, carver
from triage.workers.carve.stream import Cursor

log = logging.getLogger(__name__)

SOI, EOI, SOS, DRI = 0xD8, 0xD9, 0xDA, 0xDD
#: start-of-frame markers (all processes, incl. JPEG-LS SOF55), which carry the image geometry
SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
#: markers followed by a 16-bit length (SOF, DHT, DAC, DQT, DNL, DRI, DHP, EXP, APPn, LSE, COM)
SEGMENTS = SOF | {0xC4, 0xCC, 0xDB, 0xDC, DRI, 0xDE, 0xDF, 0xF8, 0xFE} | set(range(0xE0, 0xF0))
#: the end of entropy-coded data: FF followed by anything but stuffing, RSTn or fill
ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
#: fill bytes tolerated before a marker; erased flash (all FF) must not cost a byte-by-byte walk
MAX_FILL = 1024


@carver("jpeg", headers=[b"\xff\xd8\xff"], max_size=64 << 20)
class JpegCarver(Carver):
    DESCRIPTION = "JPEG image (JFIF/EXIF; baseline, progressive or lossless)"
    EXTENSION = "jpg"
    MIME = "image/jpeg"

    def carve(self, reader: Reader, start: int) -> int | None:
        cur = Cursor(reader, start, self.MAX_SIZE)
        if cur.take(2) != b"\xff\xd8":
            return None
        frame = scans = False
        while True:
            marker = _next_marker(cur)
            if marker is None:
                return None
            if marker == EOI:
                return cur.pos - start if scans else None
            if marker not in SEGMENTS and marker != SOS:
                return None
            raw = cur.take(2)
            if raw is None:
                return None
            length = int.from_bytes(raw, "big")
            if length < 2:
                return None
            if marker in SOF or marker in (SOS, DRI):
                body = cur.take(length - 2)
                if body is None or not _segment_ok(marker, body, frame):
                    return None
                if marker in SOF:
                    frame = True
                elif marker == SOS:
                    scans = True
                    if not _skip_entropy(cur):
                        return None
            elif not cur.skip(length - 2):
                return None


def _next_marker(cur: Cursor) -> int | None:
    """The marker code at the cursor: ``FF``, optional ``FF`` fill bytes, then the code."""
    two = cur.take(2)
    if two is None or two[0] != 0xFF:
        return None
    code = two[1]  # one read for the usual FF xx; fill bytes (FF FF ... xx) are walked below
    for _ in range(MAX_FILL):
        if code != 0xFF:
            return code
        code = cur.byte()
    return None


def _segment_ok(marker: int, body: bytes, frame: bool) -> bool:
    """Check the segments whose fields pin the structure: frame, scan and restart interval."""
    if marker in SOF:
        # P, Y, X, Nf then 3 bytes per component; Y may be 0 (set later by DNL)
        if len(body) < 6:
            return False
        precision, width, ncomp = body[0], int.from_bytes(body[3:5], "big"), body[5]
        return 2 <= precision <= 16 and width > 0 and ncomp >= 1 and len(body) == 6 + 3 * ncomp
    if marker == SOS:
        if not frame or not body:
            return False
        ncomp = body[0]
        return 1 <= ncomp <= 4 and len(body) == 4 + 2 * ncomp
    return len(body) == 2  # DRI


def _skip_entropy(cur: Cursor) -> bool:
    """Move the cursor to the marker that ends the entropy-coded data; False if none in bounds."""
    hit = cur.search(ENTROPY_END, 2)
    if hit is None:
        return False
    cur.pos = hit[0]
    return True
