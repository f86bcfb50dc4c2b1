"""The carving task: scan one chunk of the image for objects and digest each one found.

A chunk is a description (image, byte range, look-back); the scanner
(:mod:`triage.workers.carve.scanner`) reports only objects that *start* in the
chunk, so adjacent chunks report each object once. Every carved object is digested
like any file (:mod:`triage.workers.digest`; its MIME type is the carver's, which
validated the structure), and with an extraction directory its bytes are written
there under a name made only from its offset and type.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa

from triage.rules.errors import TriageError
from triage.workers.carve.scanner import iter_scan
from triage.workers.carve.spancache import SpanCache
from triage.workers.content import Rows
from triage.workers.digest import Digest, finish, stream
from triage.workers.image import open_image
from triage.workers.refs import ContentOptions, ImageRef, KnownRef
from triage.workers.schema import FILES_SCHEMA


@dataclass(frozen=True)
class CarveChunk:
    """Carve the objects starting in ``[start, end)`` of ``image``; look back ``overlap`` bytes."""

    image: ImageRef
    start: int
    end: int
    overlap: int
    options: ContentOptions
    extract_dir: str | None = None
    known: KnownRef | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.start <= self.end and self.overlap >= 0):
            raise TriageError(f"invalid CarveChunk: [{self.start}, {self.end}) overlap {self.overlap}")

    @property
    def nbytes(self) -> int:
        return self.end - self.start


class ImageReader:
    """The carve ``Reader`` protocol over a whole image, through the cached TSK image handle."""

    def __init__(self, ref: ImageRef) -> None:
        self._img = open_image(ref)
        self.size = ref.size

    def read(self, offset: int, size: int) -> bytes:
        size = min(size, self.size - offset)
        if size <= 0:
            return b""
        return self._img.read(offset, size)


def carved_name(offset: int, extension: str) -> str:
    """The only name a carved object gets: its image offset and type, nothing from the evidence."""
    ext = "".join(ch for ch in extension.lower() if ch.isalnum())[:8] or "bin"
    return f"{offset:012d}.{ext}"


def carve_chunk(chunk: CarveChunk) -> pa.RecordBatch:
    # each object is digested as soon as it is found, from the spans the scan and its carver just read
    reader = SpanCache(ImageReader(chunk.image))
    rows = Rows(FILES_SCHEMA)
    made = False  # the extraction directory, made by the chunk's first object (once, not per object)
    for obj in iter_scan(reader, chunk.start, chunk.end, chunk.overlap):
        name = carved_name(obj.offset, obj.extension)
        sink = None
        if chunk.extract_dir is not None:
            if not made:
                os.makedirs(chunk.extract_dir, exist_ok=True)
                made = True
            sink = open(os.path.join(chunk.extract_dir, name), "wb")  # noqa: SIM115 - closed below
        try:
            d = stream(Digest(obj.length, chunk.options, sink=sink),
                       lambda pos, n, o=obj.offset: reader.read(o + pos, n), obj.length)
        finally:
            if sink is not None:
                sink.close()
        rows.add(partition=0, path=f"$Carved/{name}", name=name, inode=0, type="-/r", size=obj.length,
                 deleted=True, source="carved", offset=obj.offset, length=obj.length,
                 **finish(d, name, known_mime=obj.mime))
    return rows.batch(chunk.known)
