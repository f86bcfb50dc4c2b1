"""Task functions for a logical source (a tar, zip, UFDR or folder of a device's files, issue 15).

The same three steps as a disk image, with the source's own listing in place of
partitions and a filesystem walk:

* :func:`hash_source` — the image hash: md5/sha256 of the archive file as received
  (the media task's reader over its bytes), or of a folder's manifest;
* :func:`walk_source` — the listing as a walk table of partition 0 (a
  :class:`~triage.workers.walk.WalkResult`: path as stored, inode = the member's
  ordinal counting from 1, fls type pairs, sizes and times from the archive in UTC,
  ``source`` 'logical'); no content is read;
* :func:`read_members` — a content batch: each member read from the source into the
  digester (:mod:`triage.workers.digest`), one row per member, exactly as a disk
  file's row is made.

:func:`shape` names what the listing looks like (an Android or iOS file-system
extraction) for ``volumes.parquet``. Nothing is carved: a logical source has no
unallocated space.
"""

from __future__ import annotations

import hashlib
import logging

import pyarrow as pa

from triage.rules.errors import ImageError
from triage.workers.content import CONTENT_SCHEMA, Rows
from triage.workers.digest import Digest, failed, finish, stream
from triage.workers.formats import FORMATS
from triage.workers.formats._logical import Listing, LogicalFormat
from triage.workers.media import MediaDigest, hash_media
from triage.workers.refs import ContentBatch, ImageRef
from triage.workers.walk import WALK_SCHEMA, WalkResult

log = logging.getLogger(__name__)

#: what ``WalkResult.filesystem`` says for a logical source (there is no filesystem to name)
FILESYSTEM = "logical"

#: (marker found in a member's path, what the source is said to be), first match wins
SHAPES = (
    ("/private/var/mobile/", "iOS file system extraction"),
    ("/data/media/0/", "Android file system extraction"),
    ("/data/data/", "Android file system extraction"),
)


def source_format(ref: ImageRef) -> LogicalFormat:
    fmt = FORMATS.get(ref.format)
    if not fmt.LOGICAL:
        raise ImageError(f"{ref.path}: {ref.format} is a disk image format, not a logical source")
    return fmt  # type: ignore[return-value]


def is_logical(ref: ImageRef) -> bool:
    return bool(FORMATS.get(ref.format).LOGICAL)


def shape(paths: list[str], fmt_name: str) -> str:
    """The volume description of a source: the shape its paths show, and the container."""
    fmt = FORMATS.get(fmt_name)
    anchored = ["/" + p.strip("/") + "/" for p in paths]  # 'data/data', '/data/data/x', './data/data' alike
    for marker, what in SHAPES:
        if any(marker in p for p in anchored):
            return f"{what} in a {fmt.VOLUME_SYSTEM} source"
    return fmt.DESCRIPTION


def listing_table(listing: Listing) -> pa.RecordBatch:
    cols: dict[str, list] = {f.name: [] for f in WALK_SCHEMA}
    for ordinal, m in enumerate(listing.members, start=1):
        row = {"partition": 0, "path": m.path, "name": m.name, "inode": ordinal, "attr_type": None, "attr_id": None,
               "type": m.type, "size": m.size, "deleted": False, "source": "logical", "mtime": m.mtime,
               "atime": m.atime, "ctime": m.ctime, "crtime": m.crtime, "status": m.status, "offset": m.offset}
        for k, col in cols.items():
            col.append(row[k])
    return pa.RecordBatch.from_pydict(cols, schema=WALK_SCHEMA)


def walk_source(ref: ImageRef) -> WalkResult:
    """The listing of a logical source as partition 0's walk; a listing cut short says so in its status."""
    from triage.workers.pathmap import localize

    fmt = source_format(ref)
    listing = fmt.list_members(localize(ref))
    log.debug("%s: %d members listed (%s)", ref.path, len(listing.members), listing.status)
    return WalkResult(0, FILESYSTEM, listing.status, listing_table(listing))


def read_members(batch: ContentBatch) -> pa.RecordBatch:
    """Hash, type and perceptual-hash the members of ``batch`` (``inode`` = ordinal); one row per item."""
    rows = Rows(CONTENT_SCHEMA)
    fmt = source_format(batch.volume.image)
    for item, read in fmt.readers(batch.volume.image, batch.items):
        if isinstance(read, str):
            rows.add(row=item.row, **failed(read))
            continue
        d = stream(Digest(item.size, batch.options), read, item.size)
        rows.add(row=item.row, **finish(d, item.name))
    return rows.batch(batch.known)


def hash_source(ref: ImageRef) -> MediaDigest:
    """The source's own md5/sha256: an archive's file bytes (as a raw image's), or a folder's manifest."""
    fmt = source_format(ref)
    if fmt.MEDIA_IS_FILES:
        return hash_media(ref)
    md5, sha256, error = hashlib.md5(usedforsecurity=False), hashlib.sha256(), None
    try:
        for data in fmt.iter_media(ref, 4 << 20):
            md5.update(data)
            sha256.update(data)
    except OSError as exc:
        error = f"source manifest unreadable: {exc.strerror or exc}"
    return MediaDigest(ref.size, md5.hexdigest(), sha256.hexdigest(), error=error)
