"""The one streaming digester: every byte of content that is read goes through here once.

Files (read through TSK), links of a huge file's segment chain and carved objects
(read from the image) are all digested by :func:`stream`: md5, sha1 and sha256 from
the same chunk, the byte histogram for the entropy, the first ``magic_bytes`` for
libmagic, the whole content for a perceptual hash when it is a small enough picture,
and optionally a copy to an extraction sink. :func:`finish` turns a digest into the
content columns of one row (hashes, type, pHash, entropy, status) in one place.

Entropy is Shannon entropy in bits per byte over all bytes read (0.0 for one repeated
byte, 8.0 for uniformly random bytes): near 8 over a large file suggests encrypted or
compressed content. The histogram is 256 counts, so it travels between the links of a
chain beside the hash state, never the content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from triage.rules.errors import FilesystemError
from triage.workers.answers import ext_mismatch, magic_type, phash_of
from triage.workers.image import TSK_ERRORS, _oneline
from triage.workers.refs import ContentOptions
from triage.workers.resumable import ResumableHashes

READ_ERRORS = (*TSK_ERRORS, FilesystemError)

#: below this many bytes numpy's bincount histograms a buffer faster; above it Pillow's
#: (a C loop over the bytes themselves: bincount first casts every byte to an 8-byte intp,
#: 3.7 ns/byte on a 4 MiB read against Pillow's 0.8, as much as md5 costs)
_PILLOW_HISTOGRAM_FROM = 16 << 10
_PILLOW_HISTOGRAM_MAX = 1 << 30  # one Pillow image row at most


def byte_counts(data: bytes | bytearray | memoryview) -> np.ndarray:
    """How often each byte value 0..255 occurs in ``data`` (int64)."""
    view = memoryview(data).cast("B")  # its length counts bytes, whatever the buffer's item size
    if len(view) < _PILLOW_HISTOGRAM_FROM:
        return np.bincount(np.frombuffer(view, dtype=np.uint8), minlength=256)
    counts = np.zeros(256, dtype=np.int64)
    for at in range(0, len(view), _PILLOW_HISTOGRAM_MAX):
        part = view[at : at + _PILLOW_HISTOGRAM_MAX]
        counts += Image.frombuffer("L", (len(part), 1), part, "raw", "L", 0, 1).histogram()
    return counts


def entropy(counts: np.ndarray) -> float | None:
    """Shannon entropy in bits per byte of a byte histogram; None when no byte was read."""
    total = int(counts.sum())
    if total == 0:
        return None
    p = counts[counts > 0] / total
    return round(float(-(p * np.log2(p)).sum()), 6) + 0.0  # + 0.0: no -0.0


class _Hashes:
    """md5/sha1/sha256 through hashlib, for content digested within one task."""

    def __init__(self) -> None:
        # the named constructors, not hashlib.new(name): that looks the algorithm up by name on every
        # call, and every carved object and archive member makes three
        self._h = {"md5": hashlib.md5(), "sha1": hashlib.sha1(), "sha256": hashlib.sha256()}

    def update(self, data: bytes) -> None:
        for h in self._h.values():
            h.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {a: h.hexdigest() for a, h in self._h.items()}


@dataclass
class Digest:
    """The running digest of one piece of content; ``state``/``counts`` resume a chain."""

    size: int                          # the whole content's size
    opts: ContentOptions
    resumable: bool = False            # hash state must be able to leave the process
    state: bytes | None = None         # hash state handed on by the previous link
    counts: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    sink: BinaryIO | None = None
    head: bytes | None = None          # the first magic_bytes, once read
    picture: list[bytes] | None = None  # all content, while it may still be a picture to pHash
    pos: int = 0
    status: str = "ok"

    def __post_init__(self) -> None:
        self.hashes: Any = ResumableHashes(self.state) if self.resumable else _Hashes()

    def feed(self, data: bytes) -> None:
        if self.pos == 0:
            self.head = data[: self.opts.magic_bytes]
            self.picture = [] if self.size <= self.opts.max_image_bytes else None
        self.hashes.update(data)
        self.counts += byte_counts(data)
        if self.picture is not None:
            self.picture.append(data)
        if self.sink is not None:
            self.sink.write(data)
        self.pos += len(data)


def stream(d: Digest, read: Callable[[int, int], bytes], end: int) -> Digest:
    """Read ``[d.pos, end)`` through ``read(pos, n)`` in bounded chunks into ``d``; a short or
    failed read ends it with a status (the content read so far stays digested)."""
    try:
        while d.pos < end:
            data = read(d.pos, min(d.opts.chunk_bytes, end - d.pos))
            if not data:
                # what `icat` outputs too: TSK returns no bytes past an attribute's initialised
                # size (sparse NTFS $BadClus:$Bad, never-written tails); not a read error
                d.status = f"short: TSK returns {d.pos} of {d.size} bytes (sparse or uninitialised)"
                break
            d.feed(data)
    except READ_ERRORS as exc:
        d.status = read_failed(exc, d.pos, d.size)
    return d


def unreadable(exc: BaseException) -> str:
    return f"unreadable: {_oneline(exc)}"


def read_failed(exc: BaseException, pos: int, size: int) -> str:
    """The status of content whose reading failed at byte ``pos``."""
    return unreadable(exc) if pos == 0 else f"partial: read error at byte {pos} of {size}: {_oneline(exc)}"


def finish(d: Digest, name: str, mime: str | None = None, magic: str | None = None,
           known_mime: str | None = None) -> dict[str, Any]:
    """The content columns of one row from a finished digest.

    ``mime``/``magic``: the type a chain's first link found (later links never see the
    head); ``known_mime``: the type a carver established.
    """
    readable = not d.status.startswith("unreadable")
    digests = d.hashes.hexdigests() if readable else {}
    if readable and mime is None:
        mime, magic = magic_type(d.head or b"", known_mime, digests.get("sha256"))
    phash, status = None, d.status
    if readable and mime.startswith("image/") and d.picture is not None and status == "ok":
        picture = d.picture
        phash, why = phash_of(lambda: b"".join(picture), d.opts.max_image_pixels, digests.get("sha256"))
        if why and "decompression bomb" in why:
            status = why  # content was read; an image that does not decode just has no pHash
    return {
        "md5": digests.get("md5"), "sha1": digests.get("sha1"), "sha256": digests.get("sha256"),
        "mime": mime if readable else None, "magic": magic if readable else None,
        "ext_mismatch": ext_mismatch(name, mime) if readable else None,
        "phash": phash, "entropy": entropy(d.counts) if readable else None, "status": status,
    }


def failed(status: str) -> dict[str, Any]:
    """The content columns of a row whose content could not be read at all."""
    return {"md5": None, "sha1": None, "sha256": None, "mime": None, "magic": None, "ext_mismatch": None,
            "phash": None, "entropy": None, "status": status}
