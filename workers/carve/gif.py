"""GIF87a/GIF89a (incl. animated) by walking blocks and sub-blocks to the trailer.

GIF has no lengths for whole blocks and no checksums, only chains of sub-blocks,
so the walk is the validation: header, logical screen descriptor, colour tables
sized by their flags, image descriptors and the four GIF89a extensions with their
fixed first-block sizes, every sub-block chain terminated, then ``0x3B``. Image
data larger than LZW could ever produce for the frame's pixels is rejected too,
which catches most files truncated into unrelated data.
"""

from __future__ import annotations

import logging

from triage.workers.carve.reader import Reader
from triage.workers.carve.registry import Carver, carver
from triage.workers.carve.stream import BLOCK, Cursor

log = logging.getLogger(__name__)

TRAILER, IMAGE, EXTENSION = 0x3B, 0x2C, 0x21
#: GIF89a extension labels and the size their first sub-block must have (None: any)
_EXTENSIONS: dict[int, int | None] = {0xF9: 4, 0xFF: 11, 0x01: 12, 0xFE: None}


@carver("gif", headers=[b"GIF87a", b"GIF89a"], max_size=32 << 20)
class GifCarver(Carver):
    DESCRIPTION = "GIF image (87a/89a, still or animated)"
    EXTENSION = "gif"
    MIME = "image/gif"

    def carve(self, reader: Reader, start: int) -> int | None:
        cur = Cursor(reader, start, self.MAX_SIZE)
        if cur.take(6) not in (b"GIF87a", b"GIF89a"):
            return None
        screen = cur.take(7)
        if screen is None or not _skip_colour_table(cur, screen[4]):
            return None
        images = 0
        while True:
            block = cur.byte()
            if block == TRAILER:
                return cur.pos - start if images else None
            if block == IMAGE:
                if not _image(cur):
                    return None
                images += 1
            elif block == EXTENSION:
                label = cur.byte()
                if label not in _EXTENSIONS:
                    return None
                want = _EXTENSIONS[label]
                if want is not None and cur.peek(1) != bytes([want]):
                    return None
                if _skip_sub_blocks(cur) is None:
                    return None
            else:
                return None


def _skip_colour_table(cur: Cursor, flags: int) -> bool:
    """Skip the global/local colour table the packed ``flags`` byte announces."""
    if not flags & 0x80:
        return True
    return cur.skip(3 << ((flags & 0x07) + 1))


def _image(cur: Cursor) -> bool:
    """Image descriptor, optional local colour table, LZW minimum code size, data."""
    desc = cur.take(9)
    if desc is None or not _skip_colour_table(cur, desc[8]):
        return False
    width, height = int.from_bytes(desc[4:6], "little"), int.from_bytes(desc[6:8], "little")
    code_size = cur.byte()
    if code_size is None or not 1 <= code_size <= 8:
        return False
    data = _skip_sub_blocks(cur)
    # each pixel costs at most one 12-bit code, plus clear codes and end-of-information
    return data is not None and data <= (width * height + width * height // 1024 + 8) * 3 // 2 + 64


def _skip_sub_blocks(cur: Cursor) -> int | None:
    """Skip a chain of sub-blocks through its zero terminator; data bytes, or None.

    Walks the length bytes inside buffered blocks rather than one cursor call per
    sub-block: an image's data is a chain of up to 255-byte sub-blocks, hundreds of
    them in a picture of tens of KB.
    """
    total = 0
    while True:
        base = cur.pos
        chunk = cur.at(base, min(BLOCK, cur.end - base))
        if not chunk:
            return None  # the chain runs past the object's bounds
        i, n = 0, len(chunk)
        while i < n:
            size = chunk[i]
            if size == 0:
                cur.pos = base + i + 1
                return total
            i += 1 + size
            total += size
        if base + i > cur.end:
            return None
        cur.pos = base + i
