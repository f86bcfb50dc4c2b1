"""What every archive reader is: a small plugin that lists members and pushes their bytes.

A reader never writes anything anywhere: it walks an archive given as a read-only,
seekable file object and, for each member, asks the caller (``visit``) for a
:class:`Sink`; member content is pushed into that sink in bounded chunks and never
touches a disk. Paths are reported exactly as stored (absolute, ``..``, invalid
UTF-8 shown with backslash escapes): they are text to show, never joined to a
directory. A sink may raise :class:`ArchiveLimit` to stop the whole archive (a zip
bomb); a reader lets it through untouched.

Push rather than pull because 7z (solid blocks, decoded by py7zr) can only give a
member's bytes while decoding everything before it; zip and tar pump the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO, ClassVar, Protocol

from triage.rules.errors import TriageError
from triage.rules.registry import Registry

#: bytes pushed into a sink per call (bounds memory per member being read)
CHUNK = 1 << 20
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class ArchiveLimit(TriageError):
    """A limit (members, expanded bytes, ratio) was reached: the archive stops here."""


class EncryptedArchive(Exception):
    """Nothing can be listed without a password (7z with encrypted headers)."""


class MemberError(Exception):
    """One member's content could not be read (bad CRC, corrupt data); the next member is tried."""


@dataclass(frozen=True)
class Member:
    """One archive entry as stored. Times are UTC nanoseconds since 1970, None when absent."""

    path: str                     # as stored, '/' separated, trailing '/' of a directory removed
    size: int                     # uncompressed bytes the archive declares
    kind: str = "r"               # 'r' regular file, 'd' directory, 'l' symbolic link, '-' anything else
    encrypted: bool = False
    compressed: int | None = None  # bytes it takes in the archive, where the format says
    mtime: int | None = None
    atime: int | None = None
    ctime: int | None = None
    crtime: int | None = None


class Sink(Protocol):
    """Where a member's bytes go (the expander's digester)."""

    def write(self, data: bytes) -> None: ...

    def fail(self, why: str) -> None: ...

    def close(self) -> None: ...


Visit = Callable[[Member], "Sink | None"]


class ArchiveFormat:
    """Base of every reader. ``MIMES``: libmagic types it may take; ``sniff`` decides on content."""

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    MIMES: ClassVar[frozenset[str]]

    def sniff(self, f: BinaryIO) -> bool:
        """Whether this reader takes the archive (``f`` is at 0 and is put back there)."""
        return True

    def expand(self, f: BinaryIO, size: int, visit: Visit, max_members: int, name: str) -> None:
        """List every member, calling ``visit``; push the content of those given a sink.

        ``name``: the archive's own name (a gzip member without a stored name is named after it).
        ``max_members``: a reader that knows the count before listing refuses more up front
        (raising :class:`ArchiveLimit`); the others are stopped by ``visit`` when it is reached."""
        raise NotImplementedError


ARCHIVES: Registry[ArchiveFormat] = Registry("archive format", package="triage.workers.archives.formats")


def archive_mimes() -> frozenset[str]:
    """Every libmagic type some reader takes: a file of one of them is expanded."""
    return frozenset(m for fmt in ARCHIVES for m in fmt.MIMES)


def reader_for(mime: str | None, f: BinaryIO) -> ArchiveFormat | None:
    """The first registered reader taking ``mime`` whose sniff accepts the content."""
    for fmt in ARCHIVES:
        if mime in fmt.MIMES:
            f.seek(0)
            ok = fmt.sniff(f)
            f.seek(0)
            if ok:
                return fmt
    return None


def text(raw: bytes) -> str:
    """A stored name as text: UTF-8, anything else shown as backslash escapes (as the walk does)."""
    return raw.decode("utf-8", "backslashreplace")


def clean_path(name: str) -> str:
    """A member path for display: '\\' kept, a directory's trailing '/' dropped; never normalised."""
    return name[:-1] if name.endswith("/") and len(name) > 1 else name


def ns(when: dt.datetime | float | int | None) -> int | None:
    """UTC nanoseconds from a datetime (naive = UTC) or POSIX seconds; None for none or 0."""
    if when is None:
        return None
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        delta = when - EPOCH
        value = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
        return value or None
    return int(when * 1_000_000_000) or None


def pump(chunks: Iterable[bytes], sink: Sink) -> None:
    """Push ``chunks`` into ``sink``; a member read error ends the member, a limit the archive."""
    try:
        for data in chunks:
            if data:
                sink.write(data)
    except ArchiveLimit:
        raise
    except MemberError as exc:
        sink.fail(str(exc))
    sink.close()


def read_chunks(read: Callable[[int], bytes], errors: tuple[type[BaseException], ...]) -> Iterable[bytes]:
    """Chunks from a file-like ``read`` until it ends; its errors become :class:`MemberError`."""
    while True:
        try:
            data = read(CHUNK)
        except errors as exc:
            raise MemberError(" ".join(f"{type(exc).__name__}: {exc}".split())) from exc
        if not data:
            return
        yield data
