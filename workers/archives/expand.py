"""Expanding an archive into rows: its members listed and digested, archives inside it too.

:class:`Expander` takes any seekable, read-only binary file object and the path of the
row the archive is (a file on a filesystem, a carved object, a member of a logical
extraction), so every source of archives shares it. Each member becomes a row of
``FILES_SCHEMA``: path ``<archive row path>/<member path as stored>``, ``container`` =
the archive row's path, ``source`` = ``archive member``, times from the archive, and its
content pushed chunk by chunk through the same digester as a disk file
(:mod:`triage.workers.digest`: hashes, type, pHash, entropy), so known-item checks and
ranking treat it exactly alike.

Depth: the archive found on the evidence is level 1 (its members are listed); an archive
among those members is level 2, and so on; with ``archives.depth`` = 2 (the default) a
level-3 archive is a row (hashed, typed) with status ``not expanded: depth limit 2``.
An archive inside an archive is expanded from memory (it was read once to be digested),
up to ``archives.nested-bytes``.

Bounds (one expansion = the archive found and everything inside it): at most
``max-members`` rows and ``max-bytes`` decompressed bytes; an archive whose expanded
bytes pass ``ratio-after`` and ``max-ratio`` times its own size (or a zip member that
declares such a ratio) is a bomb. Reaching any of them stops that archive: its rows so
far stay, the member being read gets a ``not read: ...`` status, and the archive's own
status says why (``archive not fully expanded: ratio 1031:1 exceeds 100:1``).
"""

from __future__ import annotations

import gzip
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from typing import Any, BinaryIO

import pyarrow as pa

from triage.workers.archives.base import (ARCHIVES, ArchiveLimit, EncryptedArchive, Member, MemberError, archive_mimes,
                                          reader_for)
from triage.workers.archives.limits import ArchiveLimits
from triage.workers.content import Rows
from triage.workers.digest import Digest, failed, finish
from triage.workers.refs import ContentOptions, KnownRef
from triage.workers.schema import FILES_SCHEMA

SOURCE = "archive member"


def _archive_errors() -> tuple[type[BaseException], ...]:
    import py7zr.exceptions

    return (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
            ValueError, NotImplementedError, KeyError, IndexError, struct.error, RuntimeError, TypeError,
            py7zr.exceptions.ArchiveError, MemberError)


def _oneline(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split()) if not isinstance(exc, MemberError) else str(exc)


class Expander:
    """Expands archives into rows of ``FILES_SCHEMA``, within one shared budget."""

    def __init__(self, options: ContentOptions, limits: ArchiveLimits, partition: int = 0,
                 deleted: bool = False) -> None:
        self.options, self.limits = options, limits
        self.partition, self.deleted = partition, deleted
        self.rows = Rows(FILES_SCHEMA)
        self.members = 0      # rows added so far
        self.bytes = 0        # member bytes decompressed so far
        self._mimes = archive_mimes()

    def is_archive(self, mime: str | None) -> bool:
        return mime in self._mimes

    def expand(self, f: BinaryIO, path: str, size: int, mime: str | None, depth: int = 1) -> str:
        """Add the members of the archive in ``f`` (whose row has ``path``) as rows; returns the
        archive's own status: ``ok``, or why it was not (fully) expanded."""
        if depth > self.limits.depth:
            return f"not expanded: depth limit {self.limits.depth}"
        fmt = reader_for(mime, f)
        if fmt is None:
            return "ok"  # not an archive after all (a lone .bz2 or .xz): a file like any other
        arc = _Archive(self, path, size, depth)
        status = "ok"
        try:
            fmt.expand(f, size, arc.visit, max(0, self.limits.max_members - self.members), path)
        except ArchiveLimit as exc:
            status = f"archive not fully expanded: {exc}"
        except EncryptedArchive as exc:
            status = str(exc)
        except _archive_errors() as exc:
            status = (f"archive not fully expanded: {_oneline(exc)}" if arc.listed
                      else f"archive not expanded: corrupt or unsupported: {_oneline(exc)}")
        arc.close_open(status)
        return status

    def batch(self, known: KnownRef | None) -> pa.RecordBatch:
        """The rows so far, checked against the known-item sets."""
        return self.rows.batch(known)


class _Archive:
    """One archive being expanded: its members' rows and its ratio accounting."""

    def __init__(self, exp: Expander, path: str, size: int, depth: int) -> None:
        self.exp, self.path, self.size, self.depth = exp, path, size, depth
        self.expanded = 0
        self.listed = 0
        self.open: list[_MemberSink] = []

    def row(self, m: Member) -> dict[str, Any]:
        name = m.path.rsplit("/", 1)[-1] or m.path
        return {"partition": self.exp.partition, "path": f"{self.path}/{m.path}", "name": name, "inode": 0,
                "type": f"{m.kind}/{m.kind}", "size": max(m.size, 0), "deleted": self.exp.deleted, "source": SOURCE,
                "mtime": m.mtime, "atime": m.atime, "ctime": m.ctime, "crtime": m.crtime, "container": self.path}

    def add(self, row: dict[str, Any], **content: Any) -> None:
        self.exp.rows.add(**row, **content)

    def visit(self, m: Member) -> _MemberSink | None:
        exp, lim = self.exp, self.exp.limits
        if exp.members >= lim.max_members:
            raise ArchiveLimit(f"more than {lim.max_members} members (archives.max-members)")
        exp.members += 1
        self.listed += 1
        row = self.row(m)
        if m.kind != "r":
            self.add(row, status="ok")  # directories and links: no content, as on a filesystem
            return None
        if m.encrypted:
            self.add(row, **failed("encrypted"))
            return None
        why = None
        if m.compressed is not None and m.size > lim.ratio_after and m.size > lim.max_ratio * max(m.compressed, 1):
            why = f"member {m.path} declares ratio {m.size // max(m.compressed, 1)}:1, over {lim.max_ratio}:1"
        elif exp.bytes + m.size > lim.max_bytes:
            why = f"member {m.path} ({m.size} bytes) would pass archives.max-bytes {lim.max_bytes}"
        if why is not None:
            self.add(row, **failed(f"not read: archive not fully expanded: {why}"))
            raise ArchiveLimit(why)
        sink = _MemberSink(self, m, row)
        self.open.append(sink)
        return sink

    def close_open(self, status: str) -> None:
        """Members still open when the archive stopped: read as far as it went."""
        for sink in self.open:
            if not sink.closed:
                sink.fail(status)
                sink.close()
        self.open.clear()


class _MemberSink:
    """One member's bytes into the digester (and, if it may be an archive, into memory)."""

    def __init__(self, arc: _Archive, m: Member, row: dict[str, Any]) -> None:
        self.arc, self.m, self.row = arc, m, row
        lim = arc.exp.limits
        self.d = Digest(max(m.size, 0), arc.exp.options)
        self.keep: list[bytes] | None = [] if arc.depth < lim.depth and m.size <= lim.nested_bytes else None
        self.status = "ok"
        self.closed = False

    def write(self, data: bytes) -> None:
        arc, exp, lim = self.arc, self.arc.exp, self.arc.exp.limits
        exp.bytes += len(data)
        arc.expanded += len(data)
        why = None
        if exp.bytes > lim.max_bytes:
            why = f"more than {lim.max_bytes} bytes expanded (archives.max-bytes)"
        elif arc.expanded > lim.ratio_after and arc.expanded > lim.max_ratio * max(arc.size, 1):
            why = f"ratio {arc.expanded // max(arc.size, 1)}:1 exceeds {lim.max_ratio}:1 (archives.max-ratio)"
        if why is not None:
            self.closed = True
            arc.add(self.row, **failed(f"not read: archive not fully expanded: {why}"))
            raise ArchiveLimit(why)
        self.d.feed(data)
        if self.d.picture is not None and self.d.pos > exp.options.max_image_bytes:
            self.d.picture = None  # more than the size declared (a gzip's size is a hint): not a picture to decode
        if self.keep is not None:
            if self.d.pos <= lim.nested_bytes:
                self.keep.append(data)
            else:
                self.keep = None

    def fail(self, why: str) -> None:
        self.status = f"partial: {why}" if self.d.pos else f"unreadable: {why}"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        arc, exp = self.arc, self.arc.exp
        self.d.status = self.status
        if self.status == "ok":
            self.row["size"] = self.d.pos  # what the archive really held (a gzip's declared size is mod 2**32)
        content = finish(self.d, self.row["name"])
        if content["status"] == "ok" and exp.is_archive(content["mime"]):
            content["status"] = self._nested(content["mime"])
        arc.add(self.row, **content)

    def _nested(self, mime: str) -> str:
        exp, lim = self.arc.exp, self.arc.exp.limits
        if self.arc.depth >= lim.depth:
            return f"not expanded: depth limit {lim.depth}"
        if self.keep is None:
            return f"not expanded: archive inside an archive larger than archives.nested-bytes {lim.nested_bytes}"
        data, self.keep = b"".join(self.keep), None
        status = exp.expand(io.BytesIO(data), self.row["path"], len(data), mime, self.arc.depth + 1)
        return "ok" if status == "ok" else status


__all__ = ["ARCHIVES", "SOURCE", "Expander"]
