"""ZIP (and everything built on it: docx, odt, apk, jar ...) through the standard ``zipfile``.

The member count comes from the End Of Central Directory record *before* ``zipfile``
parses the directory: a directory of millions of entries (a count bomb) is refused
for the few bytes of its EOCD instead of costing memory for every entry. ``zipfile``
bounds each member's output to its declared size and checks its CRC, so a member
cannot expand past what the directory says; the expander judges the declared ratio
before reading a byte (:class:`~triage.workers.archives.base.Member` ``compressed``).

Names and times (UTC) as :mod:`triage.workers.zipmeta` reads them, the same as for a zip
given as the source; names shown as UTF-8 with backslash escapes, like a filesystem name.
"""

from __future__ import annotations

import zipfile
import zlib
from typing import BinaryIO

from triage.workers.archives.base import (ARCHIVES, ArchiveFormat, ArchiveLimit, Member, Visit, clean_path, pump,
                                          read_chunks, text)
from triage.workers.zipmeta import raw_name, zip_times

_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError)


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
                times = zip_times(info)
                kind = "d" if info.is_dir() else ("l" if (info.external_attr >> 28) == 0o12 else "r")
                m = Member(clean_path(text(raw_name(info))), info.file_size, kind, bool(info.flag_bits & 1),
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
