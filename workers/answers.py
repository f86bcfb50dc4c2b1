"""What a worker thread knows about content: its type (libmagic) and, for a picture, its pHash.

:func:`magic_type` asks libmagic (through the reduced databases of
:mod:`triage.workers.magictyper`) for a prefix's description and MIME type;
:func:`perceptual_hash` is :func:`triage.rules.phash.phash_file` with its failures
turned into a row's status; :func:`ext_mismatch` compares a name's extension with
the type found. Each worker thread remembers its answers by the content's sha256, so
identical files (and a carved copy of a file already seen) are typed and pHashed once;
:func:`forget_answers` drops them (benchmarks do, to time a new device on a warm cluster).
:mod:`triage.workers.digest` calls these once a piece of content is read.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import re
import struct
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from PIL import Image

from triage.rules.errors import ImageHashError
from triage.workers.image import _oneline
from triage.workers.magictyper import MIME_TYPE, NoAnswer

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
        known.cache.clear()
        known.phashes.clear()
        known.epoch = _epoch
    return known


def phash_of(data: Callable[[], bytes], max_pixels: int, key: str | None) -> tuple[str | None, str | None]:
    """:func:`perceptual_hash` of ``data()`` (joined and decoded only for content this thread has not
    pHashed before); ``key``: the content's sha256."""
    return _known().phash(data, max_pixels, key)


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
