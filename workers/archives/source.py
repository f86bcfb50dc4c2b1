"""The expand task: where an archive's bytes are, opened random-access without copying.

:class:`ArchiveRef` is the small description that travels (a file of a filesystem by
inode and attribute, or a carved object as an image byte range), never content. The
worker wraps the bytes in :class:`RandomAccess` (a seekable read-only file over a
``read(pos, n)`` function: TSK's ``read_random`` or the image's ``read``) with a buffer,
so zip's central directory and 7z's header at the end are read in place; nothing is
spooled to disk.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa

from triage.rules.errors import FilesystemError, TriageError, describe
from triage.workers.archives.base import ArchiveLimit
from triage.workers.archives.expand import Expander
from triage.workers.archives.limits import ArchiveLimits
from triage.workers.image import TSK_ERRORS, _oneline, open_image
from triage.workers.refs import ContentItem, ContentOptions, ImageRef, KnownRef, VolumeRef
from triage.workers.volumes import open_fs

#: buffer between the archive readers' many small reads and TSK
BUFFER = 1 << 18
#: ``source`` of the one extra row an expand result carries when the archive itself has a status
ARCHIVE_STATUS = "archive status"
#: column of a batch's result naming the archive (its task name) each row belongs to
BATCH_NAME = "archive"


class RandomAccess(io.RawIOBase):
    """A seekable, read-only file over ``read(pos, n) -> bytes`` of ``size`` bytes."""

    def __init__(self, read: Callable[[int, int], bytes], size: int) -> None:
        super().__init__()
        self._read, self._size, self._pos = read, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset}, before the start")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buf), self._size - self._pos)
        if n <= 0:
            return 0
        data = self._read(self._pos, n)
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)


def open_random(read: Callable[[int, int], bytes], size: int) -> io.BufferedReader:
    return io.BufferedReader(RandomAccess(read, size), BUFFER)


@dataclass(frozen=True)
class ArchiveRef:
    """An archive row to expand: its row (partition, path, size, type) and where its bytes are:
    a filesystem file (``volume`` + ``inode``/attribute) or a carved object (``image`` + ``offset``)."""

    partition: int
    path: str
    size: int
    mime: str
    deleted: bool
    options: ContentOptions
    limits: ArchiveLimits
    known: KnownRef | None = None
    volume: VolumeRef | None = None
    inode: int | None = None
    attr_type: int | None = None
    attr_id: int | None = None
    image: ImageRef | None = None
    offset: int | None = None

    def __post_init__(self) -> None:
        if (self.volume is None) == (self.image is None) or (self.volume is not None and self.inode is None) \
                or (self.image is not None and self.offset is None) or self.size < 0:
            raise TriageError(f"invalid description: ArchiveRef {self.path!r} needs a volume and inode, "
                              "or an image and offset")

    def reader(self) -> Callable[[int, int], bytes]:
        """``read(pos, n)`` over the archive's bytes, opened on this worker."""
        if self.image is not None:
            img, start = open_image(self.image), self.offset or 0
            return lambda pos, n: img.read(start + pos, n)
        assert self.volume is not None and self.inode is not None
        f = open_fs(self.volume).open_meta(inode=self.inode)
        if self.attr_type is None:
            return f.read_random
        return lambda pos, n: f.read_random(pos, n, self.attr_type, self.attr_id)


@contextmanager
def _open(ref: ArchiveRef) -> Iterator[BinaryIO]:
    """The archive's bytes as a seekable file: in place on a filesystem, in the image, or in a logical
    source whose members are byte ranges of the source file; otherwise (an inflated zip member, a
    tar.gz member) read once into memory, up to ``archives.nested-bytes``."""
    from triage.workers.formats import FORMATS

    fmt = FORMATS.get(ref.volume.image.format) if ref.volume is not None else None
    if fmt is None or not getattr(fmt, "LOGICAL", False):
        yield open_random(ref.reader(), ref.size)
        return
    assert ref.volume is not None and ref.inode is not None
    item = ContentItem(0, ref.inode, None, None, ref.size, ref.path.rsplit("/", 1)[-1])
    members = fmt.readers(ref.volume.image, [item])  # kept open until the expansion ends (a folder's fd)
    try:
        _item, read = next(members)
        if isinstance(read, str):
            raise FilesystemError(read.removeprefix("unreadable: "))
        if fmt.MEMBERS_SEEKABLE:
            yield open_random(read, ref.size)
            return
        if ref.size > ref.limits.nested_bytes:
            raise ArchiveLimit(f"not expanded: a compressed member of a {fmt.VOLUME_SYSTEM} source larger than "
                               f"archives.nested-bytes {ref.limits.nested_bytes}")
        data, pos = bytearray(), 0
        while pos < ref.size and (chunk := read(pos, min(ref.options.chunk_bytes, ref.size - pos))):
            data += chunk
            pos += len(chunk)
        yield io.BytesIO(bytes(data))
    finally:
        members.close()


@dataclass(frozen=True)
class ArchiveBatch:
    """Several archives expanded in turn by one task (those one carve chunk found): a task costs the
    cluster far more than a small archive's expansion. ``names`` are the archives' own task names."""

    names: tuple[str, ...]
    refs: tuple[ArchiveRef, ...]


def expand_archives(batch: ArchiveBatch) -> pa.Table:
    """Each archive's :func:`expand_archive` rows, with an ``archive`` column naming whose rows they
    are. An archive that fails in a way the expander does not expect gets the status its own task's
    failure would have given it, so the batch's other archives keep their members."""
    tables = []
    for name, ref in zip(batch.names, batch.refs):
        try:
            rows = expand_archive(ref)
        except Exception as exc:  # noqa: BLE001 - one archive's bug must not cost the others their members
            exp = Expander(ref.options, ref.limits, ref.partition, ref.deleted)
            exp.rows.add(partition=ref.partition, path=ref.path, name="", inode=0, type="-/-", size=0,
                         deleted=ref.deleted, source=ARCHIVE_STATUS,
                         status=f"archive not expanded: expand task failed: {describe(exc)}")
            rows = exp.batch(None)
        table = pa.Table.from_batches([rows])
        tables.append(table.append_column(BATCH_NAME, pa.array([name] * table.num_rows, type=pa.string())))
    return pa.concat_tables(tables)


def expand_archive(ref: ArchiveRef) -> pa.RecordBatch:
    """The rows of an archive's members (to ``archives.depth``), plus, when the archive itself
    could not be fully expanded, one row with ``source`` = ``archive status`` and its path
    carrying that status for the archive's own row (the control plane moves it there)."""
    exp = Expander(ref.options, ref.limits, ref.partition, ref.deleted)
    try:
        with _open(ref) as fileobj:
            status = exp.expand(fileobj, ref.path, ref.size, ref.mime)
    except ArchiveLimit as exc:
        status = str(exc)
    except (*TSK_ERRORS, FilesystemError, OSError) as exc:
        status = f"archive not expanded: unreadable: {_oneline(exc)}"
    if status != "ok":
        exp.rows.add(partition=ref.partition, path=ref.path, name="", inode=0, type="-/-", size=0,
                     deleted=ref.deleted, source=ARCHIVE_STATUS, status=status)
    return exp.batch(ref.known)
