"""A zip of a device's files (a logical or file-system extraction), read member by member through ``zipfile``.

Names are the stored bytes (UTF-8 when the archive says so, otherwise taken as
UTF-8 anyway, the way phones and Info-ZIP write them), invalid bytes shown as
``\\xNN``. Times: the extended-timestamp extra field (0x5455, Unix seconds, UTC)
when present, else the NTFS extra field (0x000a), else the DOS date and time,
which carry no zone and are read as UTC. Each worker thread opens the zip once
(its central directory parsed once) and reads members from it; a member is
inflated straight into the digester, never written out.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

from triage.rules.errors import FilesystemError
from triage.workers.formats import _zipscan, image_format
from triage.workers.formats._logical import Listing, LogicalFormat, Member, Reader, link_status, show
from triage.workers.refs import ContentItem, ImageRef
from triage.workers.zipmeta import raw_name, zip_times

ZIP_HEADS = (b"PK\x03\x04", b"PK\x05\x06")  # a member first, or an empty archive's end record
READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, NotImplementedError,
               RuntimeError, ValueError)
MAX_LINK = 4096  # a symbolic link's stored target is read at most this far


def data_offset(f, info: zipfile.ZipInfo) -> int | None:
    """Where the member's (compressed) data starts in the zip file: after its local header."""
    try:
        f.seek(info.header_offset)
        head = f.read(30)
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            return None
        n, m = struct.unpack_from("<HH", head, 26)
        return info.header_offset + 30 + n + m
    except OSError:
        return None


def member_of(zf: zipfile.ZipFile, info: zipfile.ZipInfo, offset: int | None) -> Member:
    path = show(raw_name(info))
    mode = info.external_attr >> 16
    times = zip_times(info)
    if info.create_system == 3 and stat.S_ISLNK(mode):
        try:
            with zf.open(info) as f:
                target = f.read(MAX_LINK)
            status = link_status(target)
        except READ_ERRORS as exc:
            status = f"symbolic link, target unreadable: {exc}"
        return Member(path.rstrip("/"), "l/l", 0, **times, status=status)
    if info.is_dir() or (info.create_system == 3 and stat.S_ISDIR(mode)):
        return Member(path.rstrip("/"), "d/d", 0, **times)
    return Member(path, "r/r", info.file_size, **times, offset=offset)


def recovered(path: str) -> tuple[list[_zipscan.LocalMember], str]:
    """Members found by their local headers when the central directory is unreadable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return _zipscan.scan(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def recovered_member(m: _zipscan.LocalMember) -> Member:
    """A member found by its local header: names and times read as from the central directory."""
    info = zipfile.ZipInfo(date_time=_zipscan.dos_time(*m.dos))
    info.extra = m.extra  # the local copy: 0x5455 may carry atime and crtime too
    path = show(m.raw)
    if path.endswith("/"):
        return Member(path.rstrip("/"), "d/d", 0, **zip_times(info))
    return Member(path, "r/r", m.usize, **zip_times(info), offset=m.data)


class _ZipHandle:
    """One open zip: its central directory parsed once; members opened from it in turn (or, with the
    central directory gone, the members its local headers still show: ``_zipscan``)."""

    def __init__(self, ref: ImageRef) -> None:
        self.local: list[_zipscan.LocalMember] | None = None
        self.fd = -1
        try:
            self.zf = zipfile.ZipFile(ref.segments[0])
        except READ_ERRORS:
            self.zf = None
            self.fd = os.open(ref.segments[0], os.O_RDONLY)
            self.local, _why = _zipscan.scan(self.fd, os.fstat(self.fd).st_size)
            return
        self.infos = self.zf.infolist()

    def reader(self, item: ContentItem) -> Reader:
        if self.local is not None:
            if not 1 <= item.inode <= len(self.local):
                raise FilesystemError(f"member {item.inode} not in the archive")
            m = self.local[item.inode - 1]
            return _zipscan.reader(self.fd, m, f"member {show(m.raw)}")
        if not 1 <= item.inode <= len(self.infos):
            raise FilesystemError(f"member {item.inode} not in the archive")
        info = self.infos[item.inode - 1]
        what = f"member {show(raw_name(info))}"
        if info.flag_bits & 0x1:
            raise FilesystemError(f"{what} is encrypted (password-protected), not read")
        try:
            f = self.zf.open(info)
        except READ_ERRORS as exc:
            raise FilesystemError(f"{what}: {exc}") from exc

        def read(pos: int, n: int) -> bytes:
            try:
                data = f.read(n)
            except READ_ERRORS as exc:  # a bad CRC is found at the end: the bytes read stay digested
                raise FilesystemError(f"{what}: {exc}") from exc
            if not data and pos < item.size:  # a short read is kept; nothing more is the end
                raise FilesystemError(f"{what} ends at byte {pos} of {item.size} (source truncated)")
            return data

        return read

    def close(self) -> None:
        if self.zf is not None:
            self.zf.close()
        if self.fd >= 0:
            os.close(self.fd)


@image_format
class ZipFormat(LogicalFormat):
    NAME = "zip"
    DESCRIPTION = "zip archive of a device's files (logical or file-system extraction)"
    VOLUME_SYSTEM = "zip"

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        return [str(path)] if head[:4] in ZIP_HEADS else None

    def list_members(self, ref: ImageRef) -> Listing:
        listing = Listing()
        try:
            zf = zipfile.ZipFile(ref.segments[0])
        except READ_ERRORS as exc:
            found, why = recovered(ref.segments[0])
            listing.members = [recovered_member(m) for m in found]
            listing.status = (f"zip central directory unreadable (truncated or corrupt?): {exc}; {len(found)} "
                              f"member(s) recovered from their local headers ({why})")
            return listing
        with zf, open(ref.segments[0], "rb") as f:
            for info in zf.infolist():
                listing.members.append(member_of(zf, info, data_offset(f, info)))
        return listing

    def open_reader(self, ref: ImageRef) -> Any:
        try:
            return _ZipHandle(ref)
        except READ_ERRORS as exc:
            raise FilesystemError(f"{ref.path}: zip unreadable: {exc}") from exc
