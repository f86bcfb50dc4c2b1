"""The carving task: scan one chunk of the image for objects and digest each one found.

A chunk is a description (image, byte range, look-back); the scanner
(:mod:`triage.workers.carve.scanner`) reports only objects that *start* in the
chunk, so adjacent chunks report each object once. Every carved object is
hashed, typed and perceptually hashed like any file (:func:`digest`), and with
an extraction directory its bytes are written there under a name made only
from its offset and type.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa

from triage.rules.errors import TriageError
from triage.workers.carve.scanner import scan
from triage.workers.content import digest
from triage.workers.image import open_image
from triage.workers.known import KNOWN_COLUMNS, apply_known
from triage.workers.refs import ContentOptions, ImageRef, KnownRef
from triage.workers.schema import FILES_SCHEMA, RANK_COLUMNS


@dataclass(frozen=True)
class CarveChunk:
    """Carve the objects starting in ``[start, end)`` of ``image``; look back ``overlap`` bytes."""

    image: ImageRef
    start: int
    end: int
    overlap: int
    options: ContentOptions = ContentOptions()
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
    reader = ImageReader(chunk.image)
    rows: dict[str, list] = {f.name: [] for f in FILES_SCHEMA if f.name not in KNOWN_COLUMNS}
    for obj in scan(reader, chunk.start, chunk.end, chunk.overlap):
        name = carved_name(obj.offset, obj.extension)
        sink = None
        if chunk.extract_dir is not None:
            os.makedirs(chunk.extract_dir, exist_ok=True)
            sink = open(os.path.join(chunk.extract_dir, name), "wb")  # noqa: SIM115 - closed below
        try:
            d = digest(lambda pos, n, o=obj.offset: reader.read(o + pos, n), obj.length, name, chunk.options, sink)
        finally:
            if sink is not None:
                sink.close()
        values = {
            "partition": 0, "path": f"$Carved/{name}", "name": name, "inode": 0, "attr_type": None,
            "attr_id": None, "type": "-/r", "size": obj.length, "deleted": True, "source": "carved",
            "mtime": None, "atime": None, "ctime": None, "crtime": None,
            "offset": obj.offset, "length": obj.length, **d,
            **dict.fromkeys(RANK_COLUMNS),  # ranked after the merge
        }
        for k in rows:
            rows[k].append(values[k])
    apply_known(rows, chunk.known)
    return pa.RecordBatch.from_pydict(rows, schema=FILES_SCHEMA)
