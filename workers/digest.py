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
import io
import logging
import mimetypes
import re
import struct
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from triage.rules.errors import FilesystemError, ImageHashError
from triage.workers.image import TSK_ERRORS, _oneline
from triage.workers.magictyper import MIME_TYPE, NoAnswer
from triage.workers.refs import ContentOptions
from triage.workers.resumable import ResumableHashes

READ_ERRORS = (*TSK_ERRORS, FilesystemError)
log = logging.getLogger(__name__)

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
#: bumped by :func:`forget_answers`; a thread whose answers are older drops them at its next use
_epoch = 0

#: descriptions whose MIME type libmagic's own logic fixes, so the second (MIME-mode) call is not
#: made. "data" is what libmagic says when no test matched (MIME mode: application/octet-stream);
#: an encoding name plus " text" with nothing before it is ascmagic's answer for text no soft
#: test recognised (MIME mode: text/plain). Only the encodings checked against libmagic's
#: MIME mode are listed: a UTF-16 SubRip file is described "Unicode text, UTF-16, little-endian"
#: yet typed application/x-subrip (tests/workers/test_typing.py holds such traps).
_DERIVED = (
    (re.compile(r"data"), "application/octet-stream"),
    (re.compile(r"(ASCII|Unicode text, UTF-8( \(with BOM\))?|ISO-8859|Non-ISO extended-ASCII) text"
                r"(, with (very long lines \(\d+\)|no line terminators|escape sequences|overstriking|"
                r"(CRLF|CR|LF|NEL)(, (CRLF|CR|LF|NEL))* line terminators))*"), "text/plain"),
)
#: answers remembered per worker thread, keyed by the content's sha256 (identical files, and a
#: carved object that is also an allocated file, are typed and pHashed once); short strings
ANSWER_CACHE_ENTRIES = 1 << 14


def _remember(cache: OrderedDict, key: Any, value: Any) -> None:
    cache[key] = value
    if len(cache) > ANSWER_CACHE_ENTRIES:
        cache.popitem(last=False)


class _Known:
    """What one worker thread already knows about content it digested: libmagic's answers (its
    handles live here: libmagic is not thread-safe; reduced databases through
    triage.workers.magictyper, python-magic's whole one where those are unavailable) and
    pHashes, by content, with counters."""

    def __init__(self) -> None:
        from triage.workers.magictyper import typer

        self.typer = typer()  # reduced databases per buffer (triage.workers.magictyper); None: python-magic only
        self._magic: dict[bool, Any] = {}
        self.cache: OrderedDict[tuple[str, int, str | None], tuple[str, str]] = OrderedDict()
        self.phashes: OrderedDict[tuple[str, int], tuple[str | None, str | None]] = OrderedDict()
        self.calls = self.hits = self.files = self.pictures = self.phash_hits = 0
        self.epoch = _epoch

    def phash(self, data: Callable[[], bytes], max_pixels: int, key: str | None) -> tuple[str | None, str | None]:
        """:func:`perceptual_hash` of ``data()``, joined and decoded only for content not seen before."""
        self.pictures += 1
        ck = (key, max_pixels) if key is not None else None
        if ck is not None and (hit := self.phashes.get(ck)) is not None:
            self.phashes.move_to_end(ck)
            self.phash_hits += 1
            return hit
        answer = perceptual_hash(data(), max_pixels)
        if ck is not None:
            _remember(self.phashes, ck, answer)
        return answer

    def type(self, head: bytes, known_mime: str | None, key: str | None) -> tuple[str, str]:
        self.files += 1
        ck = (key, len(head), known_mime) if key is not None else None
        if ck is not None and (hit := self.cache.get(ck)) is not None:
            self.cache.move_to_end(ck)
            self.hits += 1
            return hit
        desc = self.libmagic(head, mime=False)
        mime = known_mime or next((m for rx, m in _DERIVED if rx.fullmatch(desc)), None)
        if mime is None:
            mime = self.libmagic(head, mime=True)
        if ck is not None:
            _remember(self.cache, ck, (mime, desc))
        return mime, desc


    def libmagic(self, head: bytes, mime: bool) -> str:
        """libmagic's description (or MIME type) of ``head``: through the smallest database that
        answers as the whole one, or python-magic's whole database where that is not available."""
        self.calls += 1
        if self.typer is not None:
            try:
                return self.typer(head, MIME_TYPE if mime else 0)
            except NoAnswer:  # no answer for this buffer: python-magic's own error, as before
                pass
            except OSError as exc:  # a reduced database libmagic refuses to load: the whole one answers
                log.warning("typing with the whole magic database: %s", exc)
                self.typer = None
        if mime not in self._magic:
            import magic

            self._magic[mime] = magic.Magic(mime=mime)
        return self._magic[mime].from_buffer(head)


def _known() -> _Known:
    known = getattr(_local, "known", None)
    if known is None:
        known = _local.known = _Known()
    elif known.epoch != _epoch:  # forget_answers() was called: this thread's answers go, its handles stay
        known.cache.clear(), known.phashes.clear()
        known.epoch = _epoch
    return known


def forget_answers() -> None:
    """Make every thread of this process forget the types and pHashes it remembers by content.

    A worker that triaged a device knows the answers for its content; triaging the same device
    again would only look them up. A benchmark that times repeated runs on one warm cluster
    calls this on the workers before each run, so that each run pays what a new device costs
    (libmagic handles and loaded databases are kept: they are not answers about content).
    """
    global _epoch
    _epoch += 1


def typing_stats() -> dict[str, int]:
    """This thread's counters: files typed, libmagic calls made, typing answers from the cache,
    pictures pHashed and pHashes from the cache."""
    k = _known()
    return {"files": k.files, "libmagic_calls": k.calls, "cache_hits": k.hits, "pictures": k.pictures,
            "phash_hits": k.phash_hits}


def magic_type(head: bytes, known_mime: str | None = None, key: str | None = None) -> tuple[str, str]:
    """(MIME type, description) of content starting with ``head`` (a bounded prefix).

    One libmagic call (the description) where the MIME type follows from it or is
    ``known_mime`` (the type a carver established by validating the structure), two
    otherwise. ``key``: the whole content's sha256, under which the answer is
    remembered; the same content is never typed twice by one worker thread.
    """
    return _known().type(head, known_mime, key)


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
        phash, why = _known().phash(lambda: b"".join(picture), d.opts.max_image_pixels, digests.get("sha256"))
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
