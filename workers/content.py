"""Content tasks: read each file once in bounded chunks, hash, type and perceptual-hash it.

A task gets a :class:`ContentBatch` (a filesystem plus inode/attribute lists)
and returns one small Arrow row per file; content never leaves the worker.
md5, sha1 and sha256 are fed from the same chunk, the first bytes go to
libmagic, and images (up to a byte bound) are decoded by Pillow under a pixel
limit so a decompression bomb becomes a ``status``, not a crash.
"""

from __future__ import annotations

import hashlib
import io
import struct
import mimetypes
import threading
import warnings
from collections.abc import Callable
from typing import Any, BinaryIO

import pyarrow as pa

from PIL import Image

from triage.rules.errors import FilesystemError, ImageHashError
from triage.workers.image import TSK_ERRORS, _oneline
from triage.workers.known import KNOWN_COLUMNS, apply_known
from triage.workers.refs import ContentBatch, ContentItem, ContentOptions, Segment
from triage.workers.schema import FILES_SCHEMA
from triage.workers.volumes import open_fs

CONTENT_SCHEMA = pa.schema(
    [pa.field("row", pa.int64(), nullable=False)]
    + [FILES_SCHEMA.field(n) for n in ("md5", "sha1", "sha256", "mime", "magic", "ext_mismatch", "phash", "status",
                                       *KNOWN_COLUMNS)]
)

# libmagic answers that say nothing about the content type, so cannot contradict an extension
_UNINFORMATIVE = {"application/octet-stream", "application/x-empty", "inode/x-empty", "application/x-data"}
# extension families that legitimately carry these container types
_EQUIVALENT = {
    "application/zip": {".zip", ".docx", ".xlsx", ".pptx", ".jar", ".apk", ".odt", ".ods", ".odp", ".epub", ".kmz"},
    "application/x-ole-storage": {".doc", ".xls", ".ppt", ".msg", ".msi"},
    "application/cdfv2": {".doc", ".xls", ".ppt", ".msg", ".msi"},
    "application/vnd.ms-excel": {".xls"},
    "application/msword": {".doc"},
}

_local = threading.local()


def _magic():
    """(mime, description) libmagic handles, one pair per worker thread: libmagic is not thread-safe."""
    pair = getattr(_local, "magic", None)
    if pair is None:
        import magic

        pair = (magic.Magic(mime=True), magic.Magic())
        _local.magic = pair
    return pair


def ext_mismatch(name: str, mime: str | None) -> bool | None:
    """True when the file name's extension names a type the content is not.

    Only extensions the standard ``mimetypes`` table knows are judged; text is
    never a mismatch with another text type, nor an uninformative libmagic answer.
    """
    if mime is None:
        return None
    base = name.rsplit(":", 1)[0] if ":" in name else name
    dot = base.rfind(".")
    if dot <= 0 or dot == len(base) - 1:
        return False
    ext = base[dot:].lower()
    guessed, _ = mimetypes.guess_type("x" + ext, strict=False)
    if guessed is None or mime in _UNINFORMATIVE or guessed in _UNINFORMATIVE:
        return False
    if guessed == mime or ext in mimetypes.guess_all_extensions(mime, strict=False):
        return False
    if ext in _EQUIVALENT.get(mime, ()):
        return False
    major_g, major_m = guessed.split("/")[0], mime.split("/")[0]
    if major_g == major_m == "text" or (major_m == "text" and guessed in ("application/json", "application/xml",
                                                                         "application/javascript", "application/x-sh")):
        return False
    return True


def perceptual_hash(data: bytes, max_pixels: int) -> tuple[str | None, str | None]:
    """(16-hex pHash, None) for a decodable image, or (None, reason) when it was not hashed.

    The hash is :func:`triage.rules.phash.phash_file`'s, the very function that hashes
    reference images, so evidence and references can only differ by their pixels.
    """
    from triage.rules.phash import DecompressionBombError, phash_file

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return phash_file(io.BytesIO(data), max_pixels), None
    except DecompressionBombError as exc:
        return None, f"image not hashed: {_oneline(exc).removeprefix('image: ')}"
    except ImageHashError as exc:
        return None, f"image not hashed: cannot decode ({_oneline(exc).removeprefix('image: ')})"
    except (MemoryError, struct.error, IndexError, TypeError, ZeroDivisionError) as exc:
        return None, f"image not hashed: cannot decode ({_oneline(exc)})"


def digest(read: Callable[[int, int], bytes], size: int, name: str, opts: ContentOptions,
           sink: BinaryIO | None = None) -> dict[str, Any]:
    """Stream ``size`` bytes through ``read(pos, n)`` once: hashes, type, pHash, status.

    Used for files (reads through TSK) and carved objects (reads from the image) alike.
    ``sink``, when given, receives the bytes too (extraction of carved objects).
    """
    md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
    head = b""
    keep_image: list[bytes] | None = None
    status = "ok"
    pos = 0
    try:
        while pos < size:
            data = read(pos, min(opts.chunk_bytes, size - pos))
            if not data:
                # what `icat` outputs too: TSK returns no bytes past an attribute's initialised
                # size (sparse NTFS $BadClus:$Bad, never-written tails); not a read error
                status = f"short: TSK returns {pos} of {size} bytes (sparse or uninitialised)"
                break
            if pos == 0:
                head = data[: opts.magic_bytes]
                keep_image = [] if size <= opts.max_image_bytes else None
            md5.update(data)
            sha1.update(data)
            sha256.update(data)
            if keep_image is not None:
                keep_image.append(data)
            if sink is not None:
                sink.write(data)
            pos += len(data)
    except TSK_ERRORS as exc:
        if pos == 0:
            status = f"unreadable: {_oneline(exc)}"
        else:
            status = f"partial: read error at byte {pos} of {size}: {_oneline(exc)}"
    mime_m, desc_m = _magic()
    mime = mime_m.from_buffer(head) if not status.startswith("unreadable") else None
    magic_desc = desc_m.from_buffer(head) if mime is not None else None
    phash = None
    if mime is not None and mime.startswith("image/") and keep_image is not None and status == "ok":
        phash, why = perceptual_hash(b"".join(keep_image), opts.max_image_pixels)
        if why and "decompression bomb" in why:
            status = why  # content was read; an image that does not decode just has no pHash

    readable = not status.startswith("unreadable")
    return {
        "md5": md5.hexdigest() if readable else None,
        "sha1": sha1.hexdigest() if readable else None,
        "sha256": sha256.hexdigest() if readable else None,
        "mime": mime,
        "magic": magic_desc,
        "ext_mismatch": ext_mismatch(name, mime),
        "phash": phash,
        "status": status,
    }


def _file_reader(fs, item: ContentItem) -> Callable[[int, int], bytes]:
    f = fs.open_meta(inode=item.inode)
    if item.attr_type is None:
        return f.read_random
    return lambda pos, n: f.read_random(pos, n, item.attr_type, item.attr_id)


def _read_one(fs, item: ContentItem, opts: ContentOptions, out: dict[str, list]) -> None:
    try:
        read = _file_reader(fs, item)
    except TSK_ERRORS as exc:
        row = {k: None for k in CONTENT_SCHEMA.names if k not in KNOWN_COLUMNS}
        row["status"] = f"unreadable: {_oneline(exc)}"
    else:
        row = digest(read, item.size, item.name, opts)
    row["row"] = item.row
    for k, v in row.items():
        out[k].append(v)


def read_content(batch: ContentBatch) -> pa.RecordBatch:
    """Hash, type and perceptual-hash every file of ``batch``; one row per item, in item order."""
    out: dict[str, list] = {f.name: [] for f in CONTENT_SCHEMA if f.name not in KNOWN_COLUMNS}
    try:
        fs = open_fs(batch.volume)
    except FilesystemError as exc:
        for item in batch.items:
            out["row"].append(item.row)
            for k in ("md5", "sha1", "sha256", "mime", "magic", "ext_mismatch", "phash"):
                out[k].append(None)
            out["status"].append(f"unreadable: {exc}")
    else:
        for item in batch.items:
            _read_one(fs, item, batch.options, out)
    apply_known(out, batch.known)
    return pa.RecordBatch.from_pydict(out, schema=CONTENT_SCHEMA)


def read_segment(seg: Segment) -> Segment | pa.RecordBatch:
    """Read and hash one segment of a huge file.

    Returns the next :class:`Segment` (carrying the hash state and the type found in the
    first bytes) while the file goes on, and the file's content row, like
    :func:`read_content`, once it ends or cannot be read further.
    """
    from triage.workers.resumable import ResumableHashes

    hashes = ResumableHashes(seg.state)
    opts, item = seg.options, seg.item
    mime, magic_desc = seg.mime, seg.magic
    status = "ok"
    pos = seg.start
    try:
        read = _file_reader(open_fs(seg.volume), item)
        while pos < seg.end:
            data = read(pos, min(opts.chunk_bytes, seg.end - pos))
            if not data:
                status = f"short: TSK returns {pos} of {item.size} bytes (sparse or uninitialised)"
                break
            if pos == 0:
                mime_m, desc_m = _magic()
                head = data[: opts.magic_bytes]
                mime, magic_desc = mime_m.from_buffer(head), desc_m.from_buffer(head)
            hashes.update(data)
            pos += len(data)
    except (*TSK_ERRORS, FilesystemError) as exc:
        status = (f"unreadable: {_oneline(exc)}" if pos == 0
                  else f"partial: read error at byte {pos} of {item.size}: {_oneline(exc)}")
    if status == "ok" and not seg.last:
        return Segment(seg.volume, item, seg.end, min(item.size, seg.end + seg.nbytes), opts, seg.known,
                       hashes.state(), mime, magic_desc)
    readable = not status.startswith("unreadable")
    digests = hashes.hexdigests()
    out: dict[str, list] = {
        "row": [item.row], **{a: [digests[a] if readable else None] for a in ("md5", "sha1", "sha256")},
        "mime": [mime], "magic": [magic_desc], "ext_mismatch": [ext_mismatch(item.name, mime)],
        "phash": [None], "status": [status],
    }
    apply_known(out, seg.known)
    return pa.RecordBatch.from_pydict(out, schema=CONTENT_SCHEMA)
