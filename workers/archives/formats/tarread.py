"""tar (ustar, GNU, pax; plain or gzip/bzip2/xz-compressed) through the standard ``tarfile``.

Read as a stream (``r|*``): one forward pass, each member's content pushed while the
pass is on it, so a compressed tar is decompressed once and never seeked back in.
Member counts are bounded by the expander's ``visit`` (the stream has no directory to
count first). Names are bytes in the archive (pax names UTF-8): shown as UTF-8 with
backslash escapes. Only the modification time exists (pax may add atime/ctime).
"""

from __future__ import annotations

import lzma
import tarfile
import zlib
from typing import BinaryIO

from triage.workers.archives.base import ARCHIVES, ArchiveFormat, Member, Visit, clean_path, ns, pump, read_chunks

_READ_ERRORS = (tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError)


def _name(raw: str) -> str:
    return raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "r"
    if info.isdir():
        return "d"
    return "l" if info.issym() or info.islnk() else "-"


def _pax_time(info: tarfile.TarInfo, key: str) -> int | None:
    value = info.pax_headers.get(key)
    try:
        return ns(float(value)) if value else None
    except ValueError:
        return None


def expand_tar(f: BinaryIO, visit: Visit, mode: str = "r|*") -> None:
    """Stream every member of the tar in ``f`` (compressed as ``mode`` says) through ``visit``."""
    with tarfile.open(fileobj=f, mode=mode, encoding="utf-8", errors="surrogateescape") as tf:
        while (info := tf.next()) is not None:
            tf.members.clear()  # a stream keeps every TarInfo otherwise; the expander bounds the count
            m = Member(clean_path(_name(info.name)), info.size if info.isreg() else 0, _kind(info),
                       mtime=ns(info.mtime), atime=_pax_time(info, "atime"), ctime=_pax_time(info, "ctime"))
            sink = visit(m)
            if sink is None:
                continue
            stream = tf.extractfile(info)
            if stream is None:
                sink.close()
                continue
            pump(read_chunks(stream.read, _READ_ERRORS), sink)


_COMPRESSED = frozenset({"application/x-bzip2", "application/x-xz"})


@ARCHIVES.register("tar", instance=True)
class TarReader(ArchiveFormat):
    DESCRIPTION = "tar archive: ustar, GNU, pax, plain or bzip2/xz-compressed (stdlib tarfile, read as one stream)"
    MIMES = frozenset({"application/x-tar", "application/x-gtar", "application/x-ustar", *_COMPRESSED})

    def sniff(self, f: BinaryIO) -> bool:
        """A .tar.bz2/.tar.xz is taken when a valid tar header follows; a lone .bz2/.xz is not an archive."""
        try:
            with tarfile.open(fileobj=f, mode="r|*") as tf:
                return tf.next() is not None
        except _READ_ERRORS:
            return False

    def expand(self, f: BinaryIO, size: int, visit: Visit, max_members: int, name: str) -> None:
        expand_tar(f, visit)

