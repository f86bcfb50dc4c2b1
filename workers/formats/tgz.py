"""A gzip-compressed tar (``.tar.gz`` / ``.tgz``) of a device's files.

gzip has no random access: reaching a member means decompressing everything
before it. So the listing is one decompressing pass over the headers, and the
members are read by a few content tasks (``STREAM_TASKS``), each streaming the
archive from its start, skipping the members before its own and stopping after
its last, each member's bytes going straight from the decompressor into the
digester (never to disk). Inflating is cheap next to hashing, typing and pHashing
the members, so the repeated prefixes cost less than the parallelism gains;
spooling the decompressed tar to disk once would avoid them but writes a copy of
the evidence (``tests/benchmarks/bench_extraction.py --also tgz``).
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from triage.rules.errors import FilesystemError
from triage.workers.formats import image_format
from triage.workers.formats._logical import Listing, LogicalFormat, Reader, show
from triage.workers.formats.tar import is_tar_header, list_tar
from triage.workers.pathmap import localize
from triage.workers.refs import ContentItem, ImageRef

READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


def _sequential(f, what: str, size: int) -> Reader:
    """A member's file object as a reader: positions only ever increase (the digester reads in order)."""

    def read(pos: int, n: int) -> bytes:
        try:
            data = f.read(n)
        except READ_ERRORS as exc:
            raise FilesystemError(f"{what}: {exc}") from exc
        if not data and pos < size:  # a short read is kept; nothing more is the end
            raise FilesystemError(f"{what} ends at byte {pos} of {size} (source truncated)")
        return data

    return read


@image_format
class TgzFormat(LogicalFormat):
    NAME = "tgz"
    DESCRIPTION = "gzip-compressed tar of a device's files (.tar.gz / .tgz file-system extraction)"
    VOLUME_SYSTEM = "tar.gz"
    RANDOM_ACCESS = False

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        if head[:2] != b"\x1f\x8b":
            return None
        try:
            first = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 512)
        except zlib.error:
            return None
        return [str(path)] if is_tar_header(first) else None

    def list_members(self, ref: ImageRef) -> Listing:
        return list_tar(None, ref.segments[0], "r:gz", data_offset=False)[0]

    def readers(self, ref: ImageRef, items: Sequence[ContentItem]) -> Iterator[tuple[ContentItem, Reader | str]]:
        """One pass over the stream: each wanted member read as it goes by."""
        wanted = {it.inode: it for it in items}
        local = localize(ref)
        try:
            with open(local.segments[0], "rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as tf:
                ordinal = 0
                while wanted:
                    try:
                        ti = tf.next()
                    except READ_ERRORS:
                        break
                    if ti is None:
                        break
                    ordinal += 1
                    item = wanted.pop(ordinal, None)
                    if item is None:
                        continue
                    try:
                        f = tf.extractfile(ti)
                    except READ_ERRORS as exc:
                        yield item, f"unreadable: {exc}"
                        continue
                    if f is None:
                        yield item, "unreadable: not a regular member"
                        continue
                    yield item, _sequential(f, f"member {show(ti.name)}", item.size)
        except READ_ERRORS as exc:
            for item in wanted.values():
                yield item, f"unreadable: {exc}"
            return
        for item in wanted.values():
            yield item, "unreadable: member not reached: the compressed stream ends or is corrupt before it"
