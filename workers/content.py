"""Content tasks: read each file once in bounded chunks, hash, type and perceptual-hash it.

A task gets a :class:`ContentBatch` (a filesystem plus inode/attribute lists), or one
:class:`Segment` of a huge file, and returns one small Arrow row per file; content
never leaves the worker. The reading and digesting is :mod:`triage.workers.digest`'s,
the same for files and carved objects; rows are built by :class:`Rows`, the one place
a result row is assembled and checked against the known-item sets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from triage.rules.errors import FilesystemError
from triage.workers.answers import magic_type
from triage.workers.digest import READ_ERRORS, Digest, failed, finish, read_failed, stream, unreadable
from triage.workers.image import TSK_ERRORS
from triage.workers.known import KNOWN_COLUMNS, apply_known
from triage.workers.refs import ContentBatch, ContentItem, KnownRef, Segment
from triage.workers.schema import FILES_SCHEMA
from triage.workers.volumes import open_fs

CONTENT_SCHEMA = pa.schema(
    [pa.field("row", pa.int64(), nullable=False)]
    + [FILES_SCHEMA.field(n) for n in ("md5", "sha1", "sha256", "mime", "magic", "ext_mismatch", "phash",
                                       "entropy", "status", *KNOWN_COLUMNS)]
)


class Rows:
    """The rows of one task's result, column by column; every producer adds rows here."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.cols: dict[str, list] = {f.name: [] for f in schema if f.name not in KNOWN_COLUMNS}

    def add(self, **values: object) -> None:
        for k, col in self.cols.items():
            col.append(values.get(k))

    def batch(self, known: KnownRef | None) -> pa.RecordBatch:
        """The rows with the known-item columns filled in, as one Arrow batch."""
        apply_known(self.cols, known)
        return pa.RecordBatch.from_pydict(self.cols, schema=self.schema)


def _file_reader(fs, item: ContentItem) -> Callable[[int, int], bytes]:
    f = fs.open_meta(inode=item.inode)
    if item.attr_type is None:
        return f.read_random
    return lambda pos, n: f.read_random(pos, n, item.attr_type, item.attr_id)


def read_content(batch: ContentBatch) -> pa.RecordBatch:
    """Hash, type and perceptual-hash every file of ``batch``; one row per item, in item order."""
    rows = Rows(CONTENT_SCHEMA)
    try:
        fs = open_fs(batch.volume)
    except FilesystemError as exc:
        for item in batch.items:
            rows.add(row=item.row, **failed(f"unreadable: {exc}"))
        return rows.batch(batch.known)
    for item in batch.items:
        try:
            read = _file_reader(fs, item)
        except TSK_ERRORS as exc:
            rows.add(row=item.row, **failed(unreadable(exc)))
            continue
        d = stream(Digest(item.size, batch.options), read, item.size)
        rows.add(row=item.row, **finish(d, item.name))
    return rows.batch(batch.known)


def read_segment(seg: Segment) -> Segment | pa.RecordBatch:
    """Read and digest one segment of a huge file.

    Returns the next :class:`Segment` (carrying the hash state, the byte histogram and
    the type found in the first bytes) while the file goes on, and the file's content
    row, like :func:`read_content`, once it ends or cannot be read further.
    """
    item = seg.item
    counts = np.zeros(256, dtype=np.int64) if seg.counts is None else np.array(seg.counts, dtype=np.int64)
    d = Digest(item.size, seg.options, resumable=True, state=seg.state, counts=counts, pos=seg.start)
    try:
        read = _file_reader(open_fs(seg.volume), item)
    except READ_ERRORS as exc:
        d.status = read_failed(exc, seg.start, item.size)
    else:
        stream(d, read, seg.end)
    mime, magic = seg.mime, seg.magic
    if seg.start == 0 and d.status == "ok":
        mime, magic = magic_type(d.head or b"")
    if d.status == "ok" and not seg.last:
        return Segment(seg.volume, item, seg.end, min(item.size, seg.end + seg.nbytes), seg.options, seg.known,
                       d.hashes.state(), mime, magic, tuple(int(c) for c in d.counts))
    rows = Rows(CONTENT_SCHEMA)
    rows.add(row=item.row, **finish(d, item.name, mime, magic))
    return rows.batch(seg.known)
