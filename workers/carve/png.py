"""PNG (and APNG) by walking chunks and checking every chunk's CRC32 through IEND.

The CRC makes a PNG self-validating: a truncated file, or one whose tail was
overwritten, fails the CRC of the chunk that was cut, so nothing past the real
object is ever reported. Chunk data is checksummed in bounded windows and never
held whole.
"""

from __future__ import annotations

import logging
import zlib

from triage.workers.carve.reader import Reader
from triage.workers.carve.registry import Carver, carver
from triage.workers.carve.stream import Cursor

log = logging.getLogger(__name__)

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG limits a chunk length to 2**31 - 1
MAX_CHUNK = (1 << 31) - 1
#: valid (bit depth, colour type) pairs from the PNG specification, table 11.1
_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}


@carver("png", headers=[SIGNATURE], max_size=64 << 20)
class PngCarver(Carver):
    DESCRIPTION = "PNG image (incl. APNG), chunks and CRC32s checked through IEND"
    EXTENSION = "png"
    MIME = "image/png"

    def carve(self, reader: Reader, start: int) -> int | None:
        cur = Cursor(reader, start, self.MAX_SIZE)
        if cur.take(8) != SIGNATURE:
            return None
        first, idat = True, False
        while True:
            head = cur.take(8)
            if head is None:
                return None
            length, ctype = int.from_bytes(head[:4], "big"), head[4:]
            if length > MAX_CHUNK or not ctype.isalpha() or not ctype.isascii():
                return None
            if first:
                if ctype != b"IHDR" or length != 13:
                    return None
                data = cur.take(13)
                if data is None or not _ihdr_ok(data):
                    return None
                crc: int | None = zlib.crc32(data, zlib.crc32(ctype))
                first = False
            else:
                crc = cur.crc32(length, zlib.crc32(ctype))
            stored = cur.take(4)
            if crc is None or stored is None or int.from_bytes(stored, "big") != crc:
                return None
            idat = idat or ctype == b"IDAT"
            if ctype == b"IEND":
                return cur.pos - start if length == 0 and idat else None


def _ihdr_ok(data: bytes) -> bool:
    width, height = int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big")
    depth, colour, compression, filtering, interlace = data[8:13]
    return (
        0 < width <= MAX_CHUNK
        and 0 < height <= MAX_CHUNK
        and depth in _DEPTHS.get(colour, ())
        and compression == 0
        and filtering == 0
        and interlace in (0, 1)
    )
