"""Typing through reduced magic databases (triage.workers.magicdb): libmagic handles, per thread.

A worker thread's :class:`Typer` classifies each buffer (first byte, plain ASCII
text or text without control bytes, which filter literals it contains, length,
whether libmagic can read it as text at all),
loads the reduced database of that class once, and asks libmagic through it. The
process shares the analysed database and the Hyperscan literal scanners; handles,
Hyperscan scratch space and caches are the thread's own (libmagic is not
thread-safe).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import logging
import os
import struct
from pathlib import Path

from triage.workers.magicdb import SIZES, Database
from triage.workers.magicentries import ASCII_TEXT, CONTROL, Group

log = logging.getLogger(__name__)

#: libmagic versions whose softmagic.c the argument in triage.workers.magicdb was checked against
LIBMAGIC_TESTED = range(544, 545)
#: libmagic MAGIC_MIME_TYPE
MIME_TYPE = 0x10
#: libmagic MAGIC_PARAM_ENCODING_MAX: how much of a buffer its encoding detection reads
_ENCODING_MAX = 7
#: byte-order marks of the text encodings libmagic accepts NUL bytes in (UTF-16, UTF-32 big-endian;
#: UTF-32 little-endian starts with UTF-16's)
_NUL_TEXT_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\0\0\xfe\xff")
#: databases kept loaded per thread (each 1-3 MiB, the whole one 8 MiB)
HANDLES = 24
#: classes of buffers remembered per thread (each a few hundred bytes)
CLASSES = 16384


def _lib() -> ctypes.CDLL:
    from magic import loader

    lib = loader.load_lib()
    lib.magic_open.restype, lib.magic_open.argtypes = ctypes.c_void_p, [ctypes.c_int]
    lib.magic_close.restype, lib.magic_close.argtypes = None, [ctypes.c_void_p]
    lib.magic_load_buffers.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                       ctypes.POINTER(ctypes.c_size_t), ctypes.c_size_t]
    lib.magic_buffer.restype = ctypes.c_char_p
    lib.magic_buffer.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    lib.magic_error.restype, lib.magic_error.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    lib.magic_setflags.restype, lib.magic_setflags.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]
    lib.magic_getpath.restype, lib.magic_getpath.argtypes = ctypes.c_char_p, [ctypes.c_char_p, ctypes.c_int]
    lib.magic_getparam.restype = ctypes.c_int
    lib.magic_getparam.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    return lib


@functools.cache
def encoding_max(lib: ctypes.CDLL) -> int:
    """How many bytes of a buffer libmagic's encoding detection reads (64 KiB in 5.44); 0 where it
    does not say, which turns the rule D of triage.workers.magicdb off."""
    cookie, value = lib.magic_open(0), ctypes.c_size_t(0)
    if not cookie:
        return 0
    try:
        return value.value if lib.magic_getparam(cookie, _ENCODING_MAX, ctypes.byref(value)) == 0 else 0
    finally:
        lib.magic_close(cookie)


def default_database_path(lib: ctypes.CDLL) -> Path | None:
    """The one compiled file libmagic loads by default, or None when it loads anything else too.

    libmagic reads each ``:``-separated component of its path (the MAGIC variable or
    the built-in list), as ``<component>.mgc`` where that exists; a source file with
    entries, a directory or two compiled files cannot be reproduced from one .mgc.
    """
    found = None
    for part in os.fsdecode(lib.magic_getpath(None, 0) or b"").split(":"):
        p = Path(part)
        if Path(part + ".mgc").is_file():
            if found is not None:
                return None
            found = Path(part + ".mgc")
        elif p.is_dir() or (p.is_file() and any(line.strip() and not line.lstrip().startswith(b"#")
                                                for line in p.read_bytes().splitlines())):
            return None
    return found


@functools.cache
def shared() -> tuple[ctypes.CDLL, Database, tuple | None] | None:
    """(libmagic, the analysed database, Hyperscan literal databases or None), once per process;
    None where the reduced databases cannot be proven to answer as libmagic does."""
    try:
        lib = _lib()
        version = lib.magic_version()
        path = default_database_path(lib)
        if version not in LIBMAGIC_TESTED or path is None:
            log.info("typing with the whole magic database (libmagic %s, database %s)", version, path)
            return None
        db = Database(path.read_bytes())
    except (OSError, ValueError, AttributeError, struct.error) as exc:
        log.info("typing with the whole magic database: %s", exc)
        return None
    return lib, db, _literal_scanner(db.literals)


def _literal_scanner(literals: list[tuple[bytes, bool]]) -> tuple | None:
    """Hyperscan databases finding the literals, ids indices into ``literals``: those without a NUL
    byte through its literal API (~0.04 s to compile, against ~0.11 s for the same literals as
    escaped patterns: every worker process pays it), the few with one as escaped patterns (the
    bindings pass literals as C strings, where a NUL would end one early; ``in`` on each cost
    ~2.5 us per literal per buffer). None where Hyperscan is unavailable (``in`` finds them all)."""
    try:
        import hyperscan

        out = []
        for literal in (True, False):
            items = [(i, lit, fold) for i, (lit, fold) in enumerate(literals) if (b"\0" not in lit) == literal]
            if not items:
                continue
            hs = hyperscan.Database()
            hs.compile(expressions=[lit if literal else b"".join(b"\\x%02x" % c for c in lit) for _, lit, _ in items],
                       ids=[i for i, _, _ in items], literal=literal,
                       flags=[hyperscan.HS_FLAG_SINGLEMATCH | (hyperscan.HS_FLAG_CASELESS if fold else 0)
                              for _, _, fold in items])
            out.append(hs)
        return tuple(out)
    except Exception as exc:  # noqa: BLE001 - ImportError, hyperscan.error, a CPU Hyperscan refuses
        log.info("magic literals found with bytes.find (%s: %s)", type(exc).__name__, exc)
        return None


class NoAnswer(OSError):
    """libmagic returned no answer for one buffer (the whole database is asked instead)."""


class _Handle:
    """One libmagic handle over an in-memory database (which libmagic does not copy: kept here)."""

    def __init__(self, lib: ctypes.CDLL, data: bytes, kept: int = 0) -> None:
        self.lib, self.buf, self.kept, self.flags = lib, ctypes.create_string_buffer(data, len(data)), kept, 0
        self.cookie = lib.magic_open(0)
        bufs = (ctypes.c_void_p * 1)(ctypes.cast(self.buf, ctypes.c_void_p))
        sizes = (ctypes.c_size_t * 1)(len(data))
        if not self.cookie or lib.magic_load_buffers(self.cookie, bufs, sizes, 1) != 0:
            raise OSError(f"libmagic cannot load a reduced database: {self.error()}")

    def error(self) -> str:
        return (self.lib.magic_error(self.cookie) or b"?").decode("utf-8", "replace") if self.cookie else "no handle"

    def __call__(self, head: bytes, flags: int = 0) -> str:
        if flags != self.flags:                                   # description or MIME type: one handle
            self.lib.magic_setflags(self.cookie, flags)
            self.flags = flags
        out = self.lib.magic_buffer(self.cookie, head, len(head))
        if out is None:
            raise NoAnswer(f"libmagic: {self.error()}")
        return out.decode("utf-8", "backslashreplace")             # as python-magic decodes

    def close(self) -> None:
        if self.cookie:
            self.lib.magic_close(self.cookie)
            self.cookie = None


class Typer:
    """libmagic's description and MIME type of a buffer, through the smallest database that
    answers for it; one per thread (libmagic handles and Hyperscan scratch are not shared).

    Buffers fall into classes (first byte, text or not, literals present, length); each class has
    its reduced database. Loading one costs ~1-5 ms, so a class seen for the first time borrows a
    loaded database that keeps every group its own keeps (any such superset answers the same), and
    its own is loaded when it comes back; at most ``HANDLES`` databases stay loaded.
    """

    def __init__(self, lib: ctypes.CDLL, db: Database, scanner: tuple | None) -> None:
        self.lib, self.db, self.scanner = lib, db, scanner
        self._scratch: list | None = None
        self._encoding_max = encoding_max(lib)
        self._classes: dict[tuple, tuple[int, int, list[Group]]] = {}  # class -> database ids
        self._ids: dict[int, int] = {}                               # mask of kept groups -> database id
        self._kept: dict[int, int] = {}
        self._wanted: dict[int, int] = {}
        self._next = itertools.count()                                # ids are never reused
        self._handles: dict[int, _Handle] = {}                     # database id -> handle
        self._borrow: dict[int, int] = {}
        self.loads = self.borrowed = 0
        self._last: tuple[bytes, int] | None = None                  # the last buffer and its database id

    def present(self, head: bytes) -> frozenset[int]:
        """Indices of the literals ``head`` contains (case-folded ones in any case)."""
        if self.scanner is None:
            low = head.lower()
            return frozenset(i for i, (lit, fold) in enumerate(self.db.literals) if lit in (low if fold else head))
        if self._scratch is None:
            import hyperscan

            self._scratch = [hyperscan.Scratch(hs) for hs in self.scanner]
        found: set[int] = set()
        for hs, scratch in zip(self.scanner, self._scratch):
            hs.scan(head, match_event_handler=lambda i, *_: found.add(i), scratch=scratch)
        return frozenset(found)

    def database(self, head: bytes) -> int:
        """The id of the smallest reduced database that answers for ``head`` as the whole one does."""
        if head.isascii():                                          # C-speed; then only odd bytes are searched
            odd = head.translate(None, ASCII_TEXT)
            ascii_text, no_control = not odd, CONTROL.search(odd) is None
        else:
            ascii_text, no_control = False, CONTROL.search(head) is None
        size = next(s for s in SIZES if s <= len(head))
        key = (head[0] if head else None, ascii_text, no_control, self.present(head), size,
               not no_control and self.no_text(head))
        cls = self._classes.get(key)
        if cls is None:
            if len(self._classes) > CLASSES:                            # bounded: forget classes, keep handles
                self._classes.clear(), self._ids.clear(), self._borrow.clear()
                self._kept = {i: k for i, k in self._kept.items() if i in self._handles}
                self._wanted = {i: n for i, n in self._wanted.items() if i in self._kept}
            ab, a, risky = self.db.kept(*key)
            cls = self._classes[key] = (self._ident(ab), self._ident(a), risky)
        return cls[1] if cls[2] and self.db.reaches_indirect(cls[2], head) else cls[0]

    def no_text(self, head: bytes) -> bool:
        """Whether libmagic's encoding detection finds no text in ``head`` (rule D of
        triage.workers.magicdb), so that it makes no text pass: a NUL byte within what the detection
        reads, before the trailing NULs ascmagic strips, and no byte-order mark of UTF-16 or UTF-32
        (the encodings whose text holds NULs)."""
        seen = head[: self._encoding_max]
        return b"\0" in seen.rstrip(b"\0") and not head.startswith(_NUL_TEXT_BOMS)

    def kept(self, ident: int) -> int:
        """The mask of the groups database ``ident`` keeps."""
        return self._kept[ident]

    def __call__(self, head: bytes, flags: int = 0) -> str:
        # the description and then the MIME type of one buffer: its class is worked out once (the
        # same bytes object; bytes are immutable, so the same object is the same content)
        last = self._last
        if last is not None and last[0] is head:
            ident = last[1]
        else:
            ident = self.database(head)
            self._last = (head, ident)
        return self._handle(ident)(head, flags)

    def _handle(self, ident: int) -> _Handle:
        """The loaded database for class ``ident``, or the smallest loaded one keeping all its groups.

        A class gets its own database when it comes back (seen twice) and, once ``HANDLES`` are
        loaded, only when it has been wanted more often than the least wanted loaded one (which
        makes room): diverse content cannot make every buffer pay a load. The whole database is
        the superset always at hand."""
        handle = self._handles.get(ident)
        if handle is not None:
            self._wanted[ident] = self._wanted.get(ident, 0) + 1
            return handle
        wanted = self._wanted[ident] = self._wanted.get(ident, 0) + 1
        loaded = [(self._wanted.get(i, 0), i) for i in self._handles if i >= 0]
        if wanted >= 2 and (len(loaded) < HANDLES or wanted > min(loaded)[0]):
            if len(loaded) >= HANDLES:
                self._handles.pop(min(loaded)[1]).close()
            self._borrow.clear()
            need = self._kept[ident]
            handle = self._handles[ident] = _Handle(self.lib, self.db.compiled(need), need)
            self.loads += 1
            return handle
        self.borrowed += 1
        key = self._borrow.get(ident)
        if key is None or key not in self._handles:
            need = self._kept[ident]
            spare = [(h.kept.bit_count(), k) for k, h in self._handles.items() if h.kept & need == need]
            key = self._borrow[ident] = min(spare)[1] if spare else self._whole()
        return self._handles[key]

    def _whole(self) -> int:
        """The handle key of the whole database (id -1), loaded once and never evicted."""
        if -1 not in self._handles:
            everything = (1 << len(self.db.groups)) - 1
            self._handles[-1] = _Handle(self.lib, self.db.compiled(everything), everything)
            self.loads += 1
        return -1

    def _ident(self, kept: int) -> int:
        ident = self._ids.get(kept)
        if ident is None:
            ident = self._ids[kept] = next(self._next)
            self._kept[ident] = kept
        return ident

    def close(self) -> None:
        for h in self._handles.values():
            h.close()
        self._handles.clear()


def typer() -> Typer | None:
    """A new :class:`Typer` for the calling thread, or None (use python-magic) where unsupported."""
    s = shared()
    return Typer(*s) if s is not None else None
