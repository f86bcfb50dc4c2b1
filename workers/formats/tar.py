"""An uncompressed tar of a device's files (the usual shape of an Android or iOS file-system extraction).

Every member's data lies contiguous in the file at ``TarInfo.offset_data``, so a
content task reads its members with positioned reads of the tar itself, and any
number of tasks read one tar in parallel like files of a disk image. A worker
thread lists the tar's headers once (metadata only) and keeps that listing with
the open file (:func:`triage.workers.handles.images`).
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any, BinaryIO

from triage.rules.errors import FilesystemError
from triage.workers.formats import image_format
from triage.workers.formats._logical import (FileHandle, Listing, LogicalFormat, Member, Reader, link_status, ns,
                                             read_exactly, show)
from triage.workers.refs import ContentItem, ImageRef

TAR_MAGIC_OFFSET = 257


def is_tar_header(block: bytes) -> bool:
    """A POSIX (ustar) or GNU tar header: the magic at byte 257 (V7 tars carry none and are not claimed)."""
    return block[TAR_MAGIC_OFFSET:TAR_MAGIC_OFFSET + 5] == b"ustar"


def _pax_time(ti: tarfile.TarInfo, key: str) -> int | None:
    value = ti.pax_headers.get(key)
    try:
        return ns(float(value)) if value is not None else None
    except ValueError:
        return None


def member_of(ti: tarfile.TarInfo, data_offset: bool = True) -> Member:
    """One tar header as a listing row; hard links and special files carry no content."""
    path = show(ti.name)
    times = {"mtime": ns(ti.mtime), "atime": _pax_time(ti, "atime"), "ctime": _pax_time(ti, "ctime")}
    if ti.isreg():
        if ti.sparse is not None:
            return Member(path, "r/r", ti.size, **times, status="no content: GNU sparse member (not read)")
        return Member(path, "r/r", ti.size, **times, offset=ti.offset_data if data_offset else None)
    if ti.isdir():
        return Member(path, "d/d", 0, **times)
    if ti.issym():
        return Member(path, "l/l", 0, **times, status=link_status(ti.linkname))
    if ti.islnk():
        return Member(path, "r/r", 0, **times,
                      status=f"no content: hard link to {show(ti.linkname)} (its content is that member's)")
    kind = {tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b", tarfile.FIFOTYPE: "p"}.get(ti.type, "-")
    return Member(path, f"{kind}/{kind}", 0, **times)


def list_tar(fileobj: BinaryIO | None, path: str, mode: str, data_offset: bool = True) -> tuple[Listing, list]:
    """The members of a tar (headers only; data skipped) and the TarInfos, stopping at a corrupt or cut header."""
    listing, infos = Listing(), []
    try:
        tf = tarfile.open(name=None if fileobj else path, fileobj=fileobj, mode=mode)
    except (tarfile.TarError, OSError, EOFError) as exc:
        listing.status = f"unreadable: not a readable tar archive: {exc}"
        return listing, infos
    try:
        while True:
            try:
                ti = tf.next()
            except (tarfile.TarError, OSError, EOFError) as exc:
                after = f"after member {len(infos)} ({listing.members[-1].path})" if infos else "at the start"
                listing.status = f"truncated or corrupt {after}: {exc}; the members before are triaged"
                break
            if ti is None:
                break
            infos.append(ti)
            listing.members.append(member_of(ti, data_offset))
    finally:
        tf.close()
    return listing, infos


class _TarHandle(FileHandle):
    """The tar file and, once, its members' data offsets."""

    def __init__(self, ref: ImageRef) -> None:
        super().__init__(ref.segments[0])
        self.size = Path(ref.segments[0]).stat().st_size
        _listing, self.infos = list_tar(None, ref.segments[0], "r:")

    def reader(self, item: ContentItem) -> Reader:
        if not 1 <= item.inode <= len(self.infos):
            raise FilesystemError(f"member {item.inode} not in the archive")
        ti = self.infos[item.inode - 1]
        start = ti.offset_data
        return read_exactly(lambda pos, n: self.pread(start + pos, n), f"member {show(ti.name)}", item.size)


@image_format
class TarFormat(LogicalFormat):
    NAME = "tar"
    DESCRIPTION = "tar archive of a device's files (file-system extraction)"
    VOLUME_SYSTEM = "tar"
    MEMBERS_SEEKABLE = True  # positioned reads of the source file

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        return [str(path)] if is_tar_header(head) else None

    def list_members(self, ref: ImageRef) -> Listing:
        return list_tar(None, ref.segments[0], "r:")[0]

    def open_reader(self, ref: ImageRef) -> Any:
        return _TarHandle(ref)
