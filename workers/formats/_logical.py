"""What every logical source shares: a tar, zip, UFDR or folder of a device's files (issue 15).

A phone usually arrives as a *file-system extraction*: the files of the device in
an archive or a folder, not a disk image. Such a source has no partitions and no
filesystem for TSK to open; its "walk" is the archive's own listing, one row per
member, and its content is read member by member through the same digester as a
disk file (:mod:`triage.workers.digest`), so hashes, type, pHash and entropy are
those of the same bytes found on a disk.

A logical format is an :class:`~triage.workers.formats.ImageFormat` with
``LOGICAL = True`` and two more methods: :meth:`LogicalFormat.list_members` (the
listing, metadata only) and :meth:`LogicalFormat.readers` (how to read the
members a content task names, by their ordinal). Paths are kept exactly as
stored (absolute names, ``..`` and invalid UTF-8, shown with backslashreplace);
nothing is ever followed on disk or written out: members are read from the
archive into the digester.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from triage.rules.errors import FilesystemError, ImageError
from triage.workers import handles
from triage.workers.formats import ImageFormat
from triage.workers.pathmap import localize
from triage.workers.refs import ContentItem, ImageRef

#: reads ``n`` bytes at ``pos`` of one member (called with increasing ``pos`` only)
Reader = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Member:
    """One entry of a logical source's listing (a row of its walk table)."""

    path: str                 # as stored: absolute, '..' kept, invalid UTF-8 as \\xNN
    type: str                 # fls-style pair: 'r/r', 'd/d', 'l/l', 'c/c', 'b/b', 'p/p', 's/s'
    size: int
    mtime: int | None = None  # ns since the epoch, UTC
    atime: int | None = None
    ctime: int | None = None
    crtime: int | None = None
    status: str = "ok"
    offset: int | None = None  # byte offset of the data in the source file (uncompressed tar, stored zip)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Listing:
    """The members of a source in stored order (ordinal = index + 1), and what stopped the listing early."""

    members: list[Member] = field(default_factory=list)
    status: str = "ok"


def show(raw: bytes | str) -> str:
    """A stored name as shown: UTF-8, invalid bytes as ``\\xNN`` (the walk's own rule)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def ns(seconds: float | int | None) -> int | None:
    """Seconds since the epoch as ns; None for none or 0 (as the walk treats a 0 time)."""
    if not seconds:
        return None
    return int(round(float(seconds) * 1_000_000_000)) if isinstance(seconds, float) else int(seconds) * 1_000_000_000


def link_status(target: bytes | str) -> str:
    return f"symbolic link -> {show(target)} (not followed)"


class LogicalFormat(ImageFormat):
    """Base of the logical sources. The file is the evidence as received: its hash is the image hash."""

    LOGICAL: ClassVar[bool] = True
    MEDIA_IS_FILES: ClassVar[bool] = True
    PRIORITY: ClassVar[int] = 40  # after the container signatures, before split raw and raw
    VOLUME_SYSTEM: ClassVar[str]  # what volumes.parquet says the source was
    #: members can be read in any order by any task (False: one sequential pass, e.g. gzip)
    RANDOM_ACCESS: ClassVar[bool] = True
    #: a member's reader answers any ``pos`` in any order (a byte range of the source file), so an archive
    #: among the members is expanded in place; otherwise (inflated zip members, tar.gz) it is read into memory
    MEMBERS_SEEKABLE: ClassVar[bool] = False
    #: without random access, the members are split into this many tasks by bytes, each decompressing the
    #: stream from its start up to its own last member: inflating costs ~5 % of what hashing, typing and
    #: pHashing the members costs (bench_extraction), so ~2.5 passes over the stream buy 4-way parallelism
    STREAM_TASKS: ClassVar[int] = 4

    def measure(self, ref: ImageRef) -> int:
        return sum(Path(s).stat().st_size for s in ref.segments)

    def open_media(self, ref: ImageRef):
        from triage.workers.formats.raw import SegmentedFile

        return SegmentedFile(list(ref.segments))

    def open_tsk(self, ref: ImageRef):
        raise ImageError(f"{ref.path}: a {self.VOLUME_SYSTEM} source has no disk image to open")

    def iter_media(self, ref: ImageRef, chunk: int) -> Iterator[bytes]:
        for seg in ref.segments:
            with open(seg, "rb", buffering=0) as f:
                while data := f.read(chunk):
                    yield data

    # -- the listing and the members --------------------------------------------------------
    def list_members(self, ref: ImageRef) -> Listing:
        raise NotImplementedError

    def open_reader(self, ref: ImageRef) -> Any:
        """A handle to read members through (cached per worker thread); has ``reader(item)`` and ``close()``."""
        raise NotImplementedError

    def readers(self, ref: ImageRef, items: Sequence[ContentItem]) -> Iterator[tuple[ContentItem, Reader | str]]:
        """Each item with how to read it, or the status saying why it cannot be read."""
        local = localize(ref)  # this worker's path, its copy checked (pathmap)
        try:
            handle = handles.images().get(("logical", local), lambda: self.open_reader(local))
        except (OSError, FilesystemError) as exc:
            for item in items:
                yield item, f"unreadable: {exc}"
            return
        for item in items:
            try:
                yield item, handle.reader(item)
            except FilesystemError as exc:
                yield item, f"unreadable: {exc}"


def read_exactly(read: Callable[[int, int], bytes], what: str, size: int) -> Reader:
    """A reader that turns a short read inside the member into an error (a truncated archive)."""

    def reader(pos: int, n: int) -> bytes:
        data = read(pos, n)
        if not data and pos < size:  # a short read is kept; nothing more is the end
            raise FilesystemError(f"{what} ends at byte {pos} of {size} (source truncated)")
        return data

    return reader


class FileHandle:
    """An open source file read by positioned reads (several members, one descriptor)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY)  # the source the examiner named; nothing inside it is followed

    def pread(self, pos: int, n: int) -> bytes:
        return os.pread(self.fd, n, pos)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
