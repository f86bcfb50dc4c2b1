"""A folder holding a device's files (an extraction unpacked by the acquisition tool, a logical copy).

Nothing is ever followed: every directory is opened relative to its parent with
``O_NOFOLLOW`` and listed with ``lstat``; a symbolic link is a row with its target,
never read through, even when it points outside the folder; files are opened
``O_RDONLY|O_NOFOLLOW|O_NONBLOCK`` (a FIFO never blocks a task) and checked to be
regular files, with ``O_NOATIME`` when the examiner owns them, so reading does not
change the access times the listing records. Entries are listed depth first in
byte order of their names, so the listing (and each row's ordinal) is the same on
every run and on every worker.

A folder has no single file to hash, so its "image hash" (image.json md5/sha256)
is taken over a manifest built the same way every time: one line per entry in
listing order, ``<type> <size> <sha256 of the content or -> <path>[ -> <link target>]``
(bytes as stored, '/'-joined, relative to the folder, newline-terminated). It
changes when any name, type, size, content or link target changes, and is
reproducible by anyone with the folder.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from triage.rules.errors import FilesystemError, ImageError
from triage.workers import handles as cache
from triage.workers.formats import image_format
from triage.workers.formats._logical import Listing, LogicalFormat, Member, Reader, link_status, read_exactly, show
from triage.workers.pathmap import localize
from triage.workers.refs import ContentItem, ImageRef

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_DEPTH = 128
TYPES = ((stat.S_ISREG, "r"), (stat.S_ISDIR, "d"), (stat.S_ISLNK, "l"), (stat.S_ISCHR, "c"), (stat.S_ISBLK, "b"),
         (stat.S_ISFIFO, "p"), (stat.S_ISSOCK, "s"))


@dataclass
class Entry:
    parts: tuple[bytes, ...]  # name bytes from the folder down
    member: Member
    target: bytes | None = None


def _type(mode: int) -> str:
    return next((c for test, c in TYPES if test(mode)), "-")


def scan(root: str) -> tuple[list[Entry], str]:
    """Every entry under ``root`` (depth first, names in byte order), and a status for the whole listing."""
    out: list[Entry] = []
    try:
        rootfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the folder the examiner named
    except OSError as exc:
        return out, f"unreadable: {exc.strerror or exc}"

    def walk(fd: int, prefix: tuple[bytes, ...], depth: int) -> str | None:
        try:
            with os.scandir(fd) as it:
                names = sorted(os.fsencode(e.name) for e in it)
        except OSError as exc:
            return f"directory unreadable: {exc.strerror or exc}"
        for name in names:
            parts = prefix + (name,)
            path = show(b"/".join(parts))
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                out.append(Entry(parts, Member(path, "-/-", 0, status=f"unreadable: {exc.strerror or exc}")))
                continue
            kind = _type(st.st_mode)
            times = {"mtime": st.st_mtime_ns or None, "atime": st.st_atime_ns or None, "ctime": st.st_ctime_ns or None}
            entry = Entry(parts, Member(path, f"{kind}/{kind}", st.st_size if kind == "r" else 0, **times))
            out.append(entry)
            if kind == "l":
                try:
                    entry.target = os.readlink(name, dir_fd=fd)
                    entry.member = Member(path, "l/l", 0, **times, status=link_status(entry.target))
                except OSError as exc:
                    entry.member = Member(path, "l/l", 0, **times, status=f"symbolic link unreadable: {exc.strerror}")
            if kind != "d":
                continue
            status = None
            if depth >= MAX_DEPTH:
                status = f"directory nesting deeper than {MAX_DEPTH}, not descended"
            else:
                try:
                    sub = os.open(name, O_DIR, dir_fd=fd)
                except OSError as exc:
                    status = f"directory unreadable: {exc.strerror or exc}"
                else:
                    try:
                        status = walk(sub, parts, depth + 1)
                    finally:
                        os.close(sub)
            if status:
                entry.member = Member(path, "d/d", 0, **times, status=status)
        return None

    try:
        why = walk(rootfd, (), 0)
    finally:
        os.close(rootfd)
    return out, why or "ok"


def open_file(rootfd: int, parts: tuple[bytes, ...]) -> int:
    """A file under the folder opened without following any link on the way; a regular file only."""
    fd, opened = rootfd, []
    try:
        for part in parts[:-1]:
            fd = os.open(part, O_DIR, dir_fd=fd)
            opened.append(fd)
        try:
            f = os.open(parts[-1], O_FILE | getattr(os, "O_NOATIME", 0), dir_fd=fd)
        except PermissionError:  # O_NOATIME needs the file's owner
            f = os.open(parts[-1], O_FILE, dir_fd=fd)
    finally:
        for d in opened:
            os.close(d)
    if not stat.S_ISREG(os.fstat(f).st_mode):
        os.close(f)
        raise FilesystemError("no longer a regular file")
    return f


class _FolderHandle:
    def __init__(self, ref: ImageRef) -> None:
        self.entries, _status = scan(ref.segments[0])
        self.rootfd = os.open(ref.segments[0], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def open(self, item: ContentItem) -> tuple[int, str]:
        if not 1 <= item.inode <= len(self.entries):
            raise FilesystemError(f"entry {item.inode} no longer in the folder")
        e = self.entries[item.inode - 1]
        if e.member.name != item.name or e.member.size != item.size:
            raise FilesystemError(f"{e.member.path}: changed since it was listed")
        try:
            return open_file(self.rootfd, e.parts), e.member.path
        except OSError as exc:
            raise FilesystemError(f"{e.member.path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        os.close(self.rootfd)


@image_format
class FolderFormat(LogicalFormat):
    NAME = "folder"
    DESCRIPTION = "folder of a device's files (extraction unpacked, logical copy)"
    VOLUME_SYSTEM = "folder"
    MEMBERS_SEEKABLE = True  # positioned reads of the source file
    DIRECTORY = True
    MEDIA_IS_FILES = False  # its hash is the manifest's (module docstring)

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        return [str(path)] if path.is_dir() else None

    def measure(self, ref: ImageRef) -> int:
        entries, status = scan(ref.segments[0])
        if status.startswith("unreadable"):
            raise ImageError(f"{ref.path}: folder {status}")
        return sum(e.member.size for e in entries if e.member.type == "r/r")

    def list_members(self, ref: ImageRef) -> Listing:
        entries, status = scan(ref.segments[0])
        return Listing([e.member for e in entries], status)

    def open_media(self, ref: ImageRef):
        raise ImageError(f"{ref.path}: a folder has no media stream")

    def open_reader(self, ref: ImageRef) -> _FolderHandle:
        return _FolderHandle(ref)

    def readers(self, ref: ImageRef, items: Sequence[ContentItem]) -> Iterator[tuple[ContentItem, Reader | str]]:
        """Each file opened when its turn comes and closed once it has been read."""
        local = localize(ref)
        try:
            handle = cache.images().get(("logical", local), lambda: self.open_reader(local))
        except OSError as exc:
            for item in items:
                yield item, f"unreadable: {exc.strerror or exc}"
            return
        for item in items:
            try:
                fd, path = handle.open(item)
            except FilesystemError as exc:
                yield item, f"unreadable: {exc}"
                continue
            try:
                yield item, read_exactly(lambda pos, n, fd=fd: os.pread(fd, n, pos), path, item.size)
            finally:
                os.close(fd)

    def iter_media(self, ref: ImageRef, chunk: int) -> Iterator[bytes]:
        """The manifest the folder's hash is taken over (module docstring); each file read once."""
        local = localize(ref)
        entries, _status = scan(local.segments[0])
        rootfd = os.open(local.segments[0], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for e in entries:
                digest = b"-"
                if e.member.type == "r/r" and e.member.status == "ok":
                    digest = self._sha256(rootfd, e, chunk)
                line = f"{e.member.type[0]} {e.member.size} ".encode() + digest + b" " + b"/".join(e.parts)
                yield line + (b" -> " + e.target if e.target is not None else b"") + b"\n"
        finally:
            os.close(rootfd)

    @staticmethod
    def _sha256(rootfd: int, e: Entry, chunk: int) -> bytes:
        try:
            fd = open_file(rootfd, e.parts)
        except (OSError, FilesystemError):
            return b"unreadable"
        h = hashlib.sha256()
        try:
            while data := os.read(fd, chunk):
                h.update(data)
        except OSError:
            return b"unreadable"
        finally:
            os.close(fd)
        return h.hexdigest().encode()
