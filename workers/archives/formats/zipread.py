"""ZIP (and everything built on it: docx, odt, apk, jar ...) through the standard ``zipfile``.

The member count comes from the End Of Central Directory record *before* ``zipfile``
parses the directory: a directory of millions of entries (a count bomb) is refused
for the few bytes of its EOCD instead of costing memory for every entry. ``zipfile``
bounds each member's output to its declared size and checks its CRC, so a member
cannot expand past what the directory says; the expander judges the declared ratio
before reading a byte (:class:`~triage.workers.archives.base.Member` ``compressed``).

Times: the NTFS extra field (0x000a, UTC FILETIMEs) or the extended timestamp
(0x5455, UTC seconds) when present; otherwise the DOS date and time, which carry no
zone, read as UTC (the archive does not say which local time it was).
Names: stored bytes (cp437 unless the UTF-8 flag is set) shown as UTF-8 with
backslash escapes, like a filesystem name.
"""

from __future__ import annotations

import datetime as dt
import struct
import zipfile
import zlib
from typing import BinaryIO

from triage.workers.archives.base import (ARCHIVES, ArchiveFormat, ArchiveLimit, Member, Visit, clean_path, ns, pump,
                                          read_chunks, text)

_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError)
_FILETIME_EPOCH = 116444736000000000  # 100 ns ticks from 1601 to 1970


def _filetime(ticks: int) -> int | None:
    return (ticks - _FILETIME_EPOCH) * 100 if ticks > _FILETIME_EPOCH else None


def _extra_times(extra: bytes) -> dict[str, int | None]:
    times: dict[str, int | None] = {}
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, i)
        body = extra[i + 4 : i + 4 + size]
        if tag == 0x000A and len(body) >= 32 and struct.unpack_from("<HH", body, 4) == (1, 24):
            m, a, c = struct.unpack_from("<QQQ", body, 8)
            times = {"mtime": _filetime(m), "atime": _filetime(a), "crtime": _filetime(c)}
        elif tag == 0x5455 and len(body) >= 5 and body[0] & 1 and "mtime" not in times:
            times["mtime"] = struct.unpack_from("<i", body, 1)[0] * 1_000_000_000 or None
        i += 4 + size
    return times


def _dos_time(fields: tuple[int, ...]) -> int | None:
    """A DOS date and time (no zone: read as UTC); None for the zero date or an impossible one."""
    try:
        return ns(dt.datetime(*fields)) if fields[1] else None
    except ValueError:
        return None


def _name(info: zipfile.ZipInfo) -> str:
    raw = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "surrogateescape")
    return text(raw)


def member_count(f: BinaryIO) -> int | None:
    """Entries the EOCD (or ZIP64 end) record declares; None when there is none."""
    f.seek(0)
    rec = zipfile._EndRecData(f)  # noqa: SLF001 - the stdlib's own EOCD reader, stable since 2.x
    return None if rec is None else int(rec[zipfile._ECD_ENTRIES_TOTAL])  # noqa: SLF001


@ARCHIVES.register("zip", instance=True)
class ZipReader(ArchiveFormat):
    DESCRIPTION = "ZIP archive and formats built on it (stdlib zipfile)"
    # plain zip only: an app package (jar, apk), an e-book or an office document is one file to the
    # examiner, and thousands of rows per installed app would bury the members that matter
    MIMES = frozenset({"application/zip", "application/x-zip-compressed"})

    def expand(self, f: BinaryIO, size: int, visit: Visit, max_members: int, name: str) -> None:
        count = member_count(f)
        if count is not None and count > max_members:
            raise ArchiveLimit(f"{count} members exceed archives.max-members {max_members}")
        f.seek(0)
        with zipfile.ZipFile(f) as zf:
            for info in zf.infolist():
                times = {"mtime": _dos_time(info.date_time), **_extra_times(info.extra)}
                kind = "d" if info.is_dir() else ("l" if (info.external_attr >> 28) == 0o12 else "r")
                m = Member(clean_path(_name(info)), info.file_size, kind, bool(info.flag_bits & 1),
                           info.compress_size, **times)
                sink = visit(m)
                if sink is None:
                    continue
                try:
                    stream = zf.open(info)
                except _READ_ERRORS as exc:
                    sink.fail(" ".join(f"{type(exc).__name__}: {exc}".split()))
                    sink.close()
                    continue
                with stream:
                    pump(read_chunks(stream.read, _READ_ERRORS), sink)
