"""libmagic with only the magic entries that can match a buffer: `file`'s answers at a fraction of the cost.

Measured on the run benchmark (tests/benchmarks/bench_magic.py), libmagic spends
its time trying every one of the ~3,500 top-level tests of its compiled database
on every buffer, and above all the ~300 ``search``/``regex`` tests that scan the
whole 8 KiB prefix for a word (``search/8192 "namespace"``): 1.7 ms for a
plain-text file. Most of them cannot match: a test whose first step fails
prints nothing and changes no state, so libmagic's answer over a database
without it is the same, byte for byte (libmagic 5.44 ``softmagic.c``: a
top-level entry that does not match is skipped with all its continuation
lines). This module reads the compiled database libmagic would load, and for
each buffer loads (once, cached) a copy of it without the top-level tests
that provably fail on that buffer:

* (A) a ``search`` or ``regex`` test needs a literal (the search string, or the
  longest run of plain characters a regular expression cannot match without);
  if the buffer does not contain it (case-folded where the test ignores case),
  the test fails wherever and however far it looks. Hyperscan finds all those
  literals in one pass. Text tests see libmagic's UTF-8 conversion of the
  buffer, not the buffer: they are only dropped when no byte of the buffer is a
  control character libmagic's text detection refuses, so the conversion keeps
  every ASCII substring (ASCII, UTF-8, ISO-8859, extended ASCII) or has none
  (UTF-16 without NUL bytes), never EBCDIC.
* (B) a ``string`` or numeric ``=`` test at offset 0 with a fixed first byte
  fails on a buffer starting with another byte. Binary tests only (text tests
  too on pure ASCII, whose conversion is the buffer itself), and not when a test
  that may still match can re-run the database on part of the buffer
  (``indirect``, directly or through a ``use``d name): there only (A) applies.

Anything the analysis does not recognise is kept, so the worst case is the full
database. Where the database is not one compiled file (a MAGIC variable, entries
in /etc/magic), or libmagic or its file format is not the version this argument
was checked against, typing uses python-magic as before. tests/workers/test_typing.py
compares every answer with `file`'s; bench_magic.py with libmagic's own on thousands.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import logging
import os
import re
import struct
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_ENTRY, _MGC_MAGIC, _MGC_VERSION = 376, 0xF11E041C, 18          # struct magic of libmagic 5.44 (version 18)
_LIBMAGIC_TESTED = range(544, 545)                               # the softmagic.c the argument above was checked on
_STRING, _REGEX, _SEARCH, _INDIRECT, _NAME, _USE = 5, 17, 20, 41, 45, 46
#: byte, short, long, beshort, belong, leshort, lelong: (size, byte order); short and long are the host's
_NUMBERS = {1: (1, "little"), 2: (2, sys.byteorder), 4: (4, sys.byteorder), 7: (2, "big"), 8: (4, "big"),
            10: (2, "little"), 11: (4, "little")}
_INDIR, _OFFNEGATIVE, _BINTEST, _TEXTTEST = 0x01, 0x80, 0x20, 0x40
_CASE = 0x4 | 0x8                                                # STRING_IGNORE_LOWERCASE | STRING_IGNORE_UPPERCASE
_WHITESPACE = 0x1 | 0x2                                          # STRING_COMPACT_(OPTIONAL_)WHITESPACE
#: string flags that do not change which bytes must be present (printing, text/binary, range units)
_SAFE_FLAGS = _CASE | _WHITESPACE | 0x10 | 0x20 | 0x40 | 0x800 | 0x2000 | 0x4000
#: libmagic MAGIC_MIME_TYPE
MIME_TYPE = 0x10
#: shortest literal worth a filter: shorter ones are in most 8 KiB buffers anyway
MIN_LITERAL = 4
#: databases kept loaded per thread (each 1-3 MiB, the whole one 8 MiB)
HANDLES = 24
#: classes of buffers remembered per thread (each a few hundred bytes)
CLASSES = 16384
_SPACE = b" \t\n\v\f\r"
#: the bytes of ASCII text as libmagic recognises it (looks_ascii): such a buffer is its own UTF-8 conversion
_ASCII_TEXT = bytes([*range(0x07, 0x0E), 0x1B, *range(0x20, 0x7F)])
#: a byte no ASCII-compatible text has (a stricter set than libmagic's): EBCDIC, UTF-32 or binary may follow
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_NO_CONTROL = bytes([0x09, 0x0A, 0x0C, 0x0D, *range(0x20, 0x7F), *range(0x80, 0x100)])
#: buffer lengths the rule (E) distinguishes: a test of the byte at offset k needs k < length
_SIZES = (1024, 128, 0)


@dataclass(frozen=True)
class Group:
    """One top-level test and its continuation lines: entries ``[start, end)`` of set 0."""

    start: int
    end: int
    binary: bool                      # run on the raw buffer (BINTEST)
    text: bool                        # run on the UTF-8 conversion of text (TEXTTEST)
    first: frozenset[int] | None      # the buffer's first byte must be one of these (B); None: any
    alien_ascii: int | None           # first offset (E) whose required byte plain ASCII text never has
    alien_text: int | None            # the same for text without control bytes
    literal: tuple[int, ...] | None   # Database.literals one of which the buffer must contain (A)
    routes: tuple[tuple, ...]         # ways to an `indirect` re-run of the database, as tests that must hold
    top: tuple | None                 # the first test, where simple enough to evaluate (C)
    uses: frozenset[bytes]            # names of the definitions its `use` lines call


def useful(lit: bytes) -> bool:
    """Whether a literal is worth a filter: long enough, or control bytes only (a tab is rare in prose)."""
    return len(lit) >= MIN_LITERAL or (bool(lit) and all(c < 0x20 and c not in b"\n\r" for c in lit))


class _Bail(Exception):
    pass


class _Ere:
    """Literals every match of a POSIX extended regular expression contains: a requirement is a
    clause, a tuple of literals one of which is in any matched text (alternation gives several)."""

    SPECIAL = b".[]()*+?{}|^$\\/-"

    def __init__(self, rx: bytes) -> None:
        self.rx, self.i = rx, 0

    def requirement(self) -> tuple[bytes, ...] | None:
        try:
            clause = self.alternation()
        except (_Bail, IndexError, ValueError):
            return None
        return clause if self.i == len(self.rx) else None

    def alternation(self) -> tuple[bytes, ...] | None:
        clauses = [self.sequence()]
        while self.i < len(self.rx) and self.rx[self.i] == 0x7C:
            self.i += 1
            clauses.append(self.sequence())
        if any(c is None for c in clauses):
            return None
        return tuple(sorted({lit for c in clauses for lit in c}))

    def sequence(self) -> tuple[bytes, ...] | None:
        rx, found, run = self.rx, [], bytearray()

        def flush() -> None:
            if run:
                found.append((bytes(run),))
                run.clear()

        while self.i < len(rx) and rx[self.i] not in b"|)":
            char, clause = self.atom()
            optional, repeated = self.quantifier()
            if char is not None and not optional:
                run.append(char)
            if char is None or optional or repeated:
                flush()
            if clause is not None and not optional:
                found.append(clause)
        flush()
        found = [c for c in found if all(useful(lit) for lit in c)]
        return max(found, key=lambda c: min(map(len, c))) if found else None

    def atom(self) -> tuple[int | None, tuple[bytes, ...] | None]:
        rx, c = self.rx, self.rx[self.i]
        if c == 0x5C:                                            # \x: a literal only for ERE specials
            self.i += 2
            return (rx[self.i - 1], None) if rx[self.i - 1] in self.SPECIAL else (None, None)
        if c == 0x5B:                                            # [...]
            j = self.i + 1 + (rx[self.i + 1] == 0x5E)
            j += rx[j] == 0x5D
            while rx[j] != 0x5D:
                j = rx.index(bytes([rx[j + 1]]) + b"]", j + 2) + 2 if rx[j] == 0x5B and rx[j + 1] in b":=." else j + 1
            self.i = j + 1
            return None, None
        if c == 0x28:                                            # (...)
            self.i += 1
            clause = self.alternation()
            if rx[self.i] != 0x29:
                raise _Bail
            self.i += 1
            return None, clause
        if c in b"*+?{)":
            raise _Bail
        self.i += 1
        return (None, None) if c in b".^$" else (c, None)

    def quantifier(self) -> tuple[bool, bool]:
        """(may repeat zero times, may repeat more than once) of the quantifiers after an atom."""
        optional = repeated = False
        while self.i < len(self.rx) and self.rx[self.i] in b"*+?{":
            c = self.rx[self.i]
            if c == 0x7B:
                close = self.rx.index(b"}", self.i)
                low = self.rx[self.i + 1: close].split(b",")[0]
                optional |= int(low) == 0
                repeated = True
                self.i = close + 1
            else:
                optional |= c in b"*?"
                repeated |= c in b"*+"
                self.i += 1
        return optional, repeated


def _mask(keep: np.ndarray) -> int:
    return int.from_bytes(np.packbits(keep, bitorder="little").tobytes(), "little")


def _cstr(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


class Database:
    """The compiled magic database libmagic loads, as groups that can be left out per buffer."""

    def __init__(self, data: bytes) -> None:
        magic_no, version, n0, n1 = struct.unpack_from("<4I", data, 0)
        if magic_no != _MGC_MAGIC or version != _MGC_VERSION or len(data) != _ENTRY * (1 + n0 + n1):
            raise ValueError(f"not a version {_MGC_VERSION} magic.mgc")
        self.data, self.n0 = data, n0
        entries = [struct.unpack_from("<HBBBBBBBBBBiiIQ", data, _ENTRY * (1 + i)) for i in range(n0 + n1)]
        self.entries = [struct.unpack_from("<HBBBBBBBBBBiiIQ", data, _ENTRY * (1 + i)) for i in range(n0 + n1)]
        self.names: dict[bytes, tuple[int, int]] = {}             # set 1: named definitions for `use`
        self.definitions: list[tuple[bytes, int, int]] = []       # (name, start, end) in their order
        starts = [i for i in range(n0, n0 + n1) if self.entries[i][0] == 0] + [n0 + n1]
        for start, end in zip(starts, starts[1:]):
            if self.entries[start][5] != _NAME:
                raise ValueError("a set-1 entry that is not a name definition")
            name = _cstr(self._value(start, self.entries[start][4]))
            self.names.setdefault(name, (start, end))             # libmagic finds the first one
            self.definitions.append((name, start, end))
        self.name_uses: dict[bytes, frozenset[bytes]] = {}
        for name, start, end in self.definitions:
            self.name_uses[name] = self.name_uses.get(name, frozenset()) | self._uses(start, end)
        self._memo: dict[tuple[bytes, bool], list[tuple]] = {}
        starts = [i for i in range(n0) if self.entries[i][0] == 0] + [n0]
        literals: dict[tuple[bytes, bool], int] = {}
        self.groups: list[Group] = []
        for start, end in zip(starts, starts[1:]):
            e = self.entries[start]
            clause = self._literal(start, e)
            idx = tuple(literals.setdefault(lit, len(literals)) for lit in clause) if clause else None
            binary_only = bool(e[1] & _BINTEST) and not e[1] & _TEXTTEST
            routes = tuple(self._routes(start, end, binary_only))
            needs = self._needs(start, e)
            self.groups.append(Group(start, end, bool(e[1] & _BINTEST), bool(e[1] & _TEXTTEST), needs.get(0),
                                     self._alien(needs, _ASCII_TEXT), self._alien(needs, _NO_CONTROL), idx, routes, self._test(start, e) if routes and binary_only else None,
                                     self._uses(start, end)))
        self.literals = list(literals)                            # (literal, case-folded)
        self._tables()
        self._entry_group = np.repeat(np.arange(len(self.groups)), [g.end - g.start for g in self.groups])
        del self.entries, self._memo

    @staticmethod
    def _alien(needs: dict[int, frozenset[int]], alphabet: bytes) -> int | None:
        return min((k for k, allowed in needs.items() if allowed.isdisjoint(alphabet)), default=None)

    def _value(self, i: int, vallen: int) -> bytes:
        at = _ENTRY * (1 + i) + 32
        return self.data[at: at + min(vallen, 128)]

    def _uses(self, lo: int, hi: int) -> frozenset[bytes]:
        return frozenset(_cstr(self._value(i, self.entries[i][4])).lstrip(b"^")
                         for i in range(lo, hi) if self.entries[i][5] == _USE)

    def _routes(self, lo: int, hi: int, absolute: bool) -> list[tuple]:
        """Every way entries ``[lo, hi)`` (``lo`` at level 0) can reach an ``indirect`` test, each as the
        tests (C) that must all hold on the way; a level-n line runs only when the last line of level
        n-1 before it matched. Tests count only where offsets are ``absolute`` (the buffer's)."""
        routes: list[tuple] = []
        last: dict[int, tuple | None] = {}
        for i in range(lo + 1, hi):
            e = self.entries[i]
            level = e[0]
            guards = tuple(t for k in range(1, level) if (t := last.get(k)) is not None)
            if e[5] == _INDIRECT:
                routes.append(guards)
            elif e[5] == _USE:
                value = _cstr(self._value(i, e[4]))
                here = absolute and e[11] == 0 and not e[1] & (_INDIR | _OFFNEGATIVE | 0x02 | 0x04) \
                    and not value.startswith(b"^")
                routes += [guards + r for r in self._name_routes(value.lstrip(b"^"), here)]
            last[level] = self._test(i, e, absolute)
            for k in [k for k in last if k > level]:
                del last[k]
        return routes

    def _name_routes(self, name: bytes, absolute: bool) -> list[tuple]:
        key = (name, absolute)
        if key not in self._memo:
            if name not in self.names:
                return [()]                                      # unknown name: assume the worst
            self._memo[key] = []                                 # a cycle adds only longer routes
            self._memo[key] = self._routes(*self.names[name], absolute)
        return self._memo[key]

    def _needs(self, i: int, e: tuple) -> dict[int, frozenset[int]]:
        """{offset: the bytes it may hold} for top-level entry ``i`` to match, from a string or a
        (masked) number compared with ``=`` at a fixed offset; {} when not that simple."""
        _cont, flag, _f, reln, vallen, typ, _it, _io, mask_op, _c, _fo, off, _io2, _ln, mask = e
        if off < 0 or flag & (_INDIR | _OFFNEGATIVE) or reln != ord("="):
            return {}
        needs: dict[int, frozenset[int]] = {}
        if typ == _STRING:
            flags = mask >> 32
            if flags & ~_SAFE_FLAGS:
                return {}
            for k, c in enumerate(self._value(i, vallen)):
                if flags & _WHITESPACE and c in _SPACE:
                    break                                        # compacted whitespace shifts what follows
                if flags & _CASE and (c >= 128 or chr(c).isalpha()):
                    if c >= 128:                                 # the C library's locale decides: unknown
                        break
                    needs[off + k] = frozenset(bytes([c]).lower() + bytes([c]).upper())
                else:
                    needs[off + k] = frozenset((c,))
            return needs
        if typ in _NUMBERS and not mask_op & 0xC0 and not (mask and mask_op & 0x07):   # & masks only
            size, order = _NUMBERS[typ]
            value = struct.unpack_from("<Q", self.data, _ENTRY * (1 + i) + 32)[0]
            keep = mask or (1 << (8 * size)) - 1
            for k in range(size):
                shift = 8 * (size - 1 - k if order == "big" else k)
                mb, vb = (keep >> shift) & 0xFF, (value >> shift) & 0xFF
                if mb:
                    needs[off + k] = frozenset(b for b in range(256) if b & mb == vb & mb)
        return needs

    def _test(self, i: int, e: tuple, absolute: bool = True) -> tuple | None:
        """A test (C) simple enough to evaluate exactly: at a fixed offset, ``=`` on a string or a
        masked number, ``<``/``>`` on an unsigned one; at an offset not known here, ``=`` on a string
        (whose bytes, up to a NUL that libmagic's zero padding could supply, must be in the buffer)."""
        _cont, flag, _f, reln, vallen, typ, _it, _io, mask_op, _c, _fo, off, _io2, _ln, mask = e
        if typ == _STRING and reln == ord("=") and not (mask >> 32) & ~(0x10 | 0x20 | 0x40 | 0x2000):
            value = self._value(i, vallen)
            if not absolute or off < 0 or flag & (_INDIR | _OFFNEGATIVE | 0x02 | 0x04):
                return ("l", value.rstrip(b"\0")) if value.rstrip(b"\0") else None
            return ("s", off, value) if value else None
        if not absolute or off < 0 or flag & (_INDIR | _OFFNEGATIVE | 0x02 | 0x04):
            return None
        if typ not in _NUMBERS or mask_op & 0xC0 or (mask and mask_op & 0x07):
            return None
        size, order = _NUMBERS[typ]
        full = (1 << (8 * size)) - 1
        value = struct.unpack_from("<Q", self.data, _ENTRY * (1 + i) + 32)[0]
        if reln == ord("="):
            return ("=", off, size, order, (mask or full) & full, value & full)
        if reln in b"<>" and flag & 0x08:                         # UNSIGNED: no sign extension
            return (chr(reln), off, size, order, (mask or full) & full, value)
        return None

    def _literal(self, i: int, e: tuple) -> tuple[tuple[bytes, bool], ...] | None:
        """(literal, case-folded) pairs one of which the buffer must contain for ``search``/``regex``
        entry ``i`` to match (A)."""
        typ, reln, vallen, flags = e[5], e[3], e[4], e[14] >> 32
        if typ not in (_SEARCH, _REGEX) or reln != ord("=") or flags & ~_SAFE_FLAGS:
            return None
        value = _cstr(self._value(i, vallen)) if typ == _REGEX else self._value(i, vallen)
        if typ == _REGEX:
            clause = _Ere(value).requirement()
        else:
            pieces = re.split(rb"[ \t\n\v\f\r]+", value) if flags & _WHITESPACE else [value]
            clause = (max(pieces, key=len),)
        fold = bool(flags & _CASE)
        if not clause or not all(useful(lit) for lit in clause) or (fold and not all(x.isascii() for x in clause)):
            return None
        return tuple((lit.lower() if fold else lit, fold) for lit in clause)

    @staticmethod
    def fails(test: tuple, head: bytes) -> bool:
        """Whether a (C) test provably fails on ``head``."""
        if test[0] == "l":
            return test[1] not in head
        if test[0] == "s":
            got = head[test[1]: test[1] + len(test[2])]
            return test[1] < len(head) and got != test[2][: len(got)]
        op, off, size, order, mask, value = test
        if off + size > len(head):
            return False
        v = int.from_bytes(head[off: off + size], order) & mask
        return not (v == value if op == "=" else v < value if op == "<" else v > value)

    def _tables(self) -> None:
        """The groups' rules as arrays, so that a class of buffers is worked out in a few vector steps."""
        g, n = self.groups, len(self.literals)
        width = max((len(x.literal) for x in g if x.literal), default=1)
        self._lit = np.array([list(x.literal or ()) + [n] * (width - len(x.literal or ())) for x in g])
        self._has_lit = np.array([x.literal is not None for x in g])
        self._text = np.array([x.text for x in g])
        self._routes = np.array([bool(x.routes) for x in g])
        self._first_bad = np.array([[x.first is not None and b not in x.first for x in g] for b in range(256)])
        far = 1 << 30
        self._alien = {True: np.array([far if x.text or x.alien_ascii is None else x.alien_ascii for x in g]),
                       False: np.array([far if x.text or x.alien_text is None else x.alien_text for x in g])}

    def kept(self, first: int | None, ascii_text: bool, no_control: bool, present: frozenset[int],
             size: int = 0) -> tuple[int, int, list[Group]]:
        """For a class of buffers, as bit masks over :attr:`groups`: (the groups that may match, the
        same without the rules B and E, the groups left that may re-run the database on a
        sub-buffer, where B and E do not hold)."""
        hit = np.zeros(len(self.literals) + 1, dtype=bool)
        hit[list(present)] = True
        a_keep = ~(self._has_lit & ~hit[self._lit].any(axis=1) & (~self._text | no_control))   # (A)
        ab_keep = a_keep
        if first is not None:
            b_fail = self._first_bad[first] & (~self._text | ascii_text)                        # (B)
            if no_control:
                b_fail |= self._alien[ascii_text] < size                                        # (E)
            ab_keep = a_keep & ~b_fail
        risky = [self.groups[i] for i in np.flatnonzero(ab_keep & self._routes)] if first is not None else []
        return _mask(ab_keep), _mask(a_keep), risky

    def reaches_indirect(self, groups: list[Group], head: bytes) -> bool:
        """Whether any of ``groups`` may reach an ``indirect`` test on ``head`` (no route provably closed)."""
        for g in groups:
            if g.top is not None and self.fails(g.top, head):
                continue
            for route in g.routes:
                if not any(self.fails(t, head) for t in route):
                    return True
        return False

    def compiled(self, kept: int) -> bytes:
        """A version-18 .mgc holding the ``kept`` groups of set 0 and the name definitions they can
        reach (set 1), each in its order. libmagic finds a `use`'s definition by scanning set 1 entry
        by entry, ~6,000 of them for every `use` (a JPEG's segment walk makes dozens): only the
        definitions reachable from the kept groups are left to scan."""
        bits = np.unpackbits(np.frombuffer(kept.to_bytes((len(self.groups) + 7) // 8, "little"), np.uint8),
                             bitorder="little")[: len(self.groups)].astype(bool)
        groups = [self.groups[i] for i in np.flatnonzero(bits)]
        reach, todo = set(), set().union(*(g.uses for g in groups))
        while todo:
            name = todo.pop()
            reach.add(name)
            todo |= self.name_uses.get(name, frozenset()) - reach
        rows = np.frombuffer(self.data, np.uint8)[_ENTRY:].reshape(-1, _ENTRY)
        body = rows[: self.n0][bits[self._entry_group]].tobytes()
        names = b"".join(rows[a:b].tobytes() for n, a, b in self.definitions if n in reach)
        header = bytearray(self.data[:_ENTRY])
        struct.pack_into("<II", header, 8, len(body) // _ENTRY, len(names) // _ENTRY)
        return bytes(header) + body + names

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
    return lib


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
def shared() -> tuple[ctypes.CDLL, Database, object] | None:
    """(libmagic, the analysed database, a Hyperscan literal database or None), once per process;
    None where the reduced databases cannot be proven to answer as libmagic does."""
    try:
        lib = _lib()
        version = lib.magic_version()
        path = default_database_path(lib)
        if version not in _LIBMAGIC_TESTED or path is None:
            log.info("typing with the whole magic database (libmagic %s, database %s)", version, path)
            return None
        db = Database(path.read_bytes())
    except (OSError, ValueError, AttributeError, struct.error) as exc:
        log.info("typing with the whole magic database: %s", exc)
        return None
    return lib, db, _literal_scanner(db.literals)


def _literal_scanner(literals: list[tuple[bytes, bool]]) -> object:
    try:
        import hyperscan

        hs = hyperscan.Database()
        # \xNN escapes: the bindings pass expressions as C strings (a NUL would end one)
        hs.compile(expressions=[b"".join(b"\\x%02x" % c for c in lit) for lit, _ in literals],
                   ids=list(range(len(literals))),
                   flags=[hyperscan.HS_FLAG_SINGLEMATCH | (hyperscan.HS_FLAG_CASELESS if fold else 0)
                          for _, fold in literals])
        return hs
    except Exception as exc:  # noqa: BLE001 - ImportError, hyperscan.error, a CPU Hyperscan refuses
        log.info("magic literals found with bytes.find (%s: %s)", type(exc).__name__, exc)
        return None


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
            raise OSError(f"libmagic: {self.error()}")
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

    def __init__(self, lib: ctypes.CDLL, db: Database, scanner: object) -> None:
        self.lib, self.db, self.scanner = lib, db, scanner
        self._scratch = None
        self._classes: dict[tuple, tuple[int, int, list[Group]]] = {}  # class -> database ids
        self._ids: dict[int, int] = {}                               # mask of kept groups -> database id
        self._kept: dict[int, int] = {}
        self._wanted: dict[int, int] = {}
        self._next = itertools.count()                                # ids are never reused
        self._handles: dict[int, _Handle] = {}                     # database id -> handle
        self._borrow: dict[int, int] = {}
        self.loads = self.borrowed = 0

    def present(self, head: bytes) -> frozenset[int]:
        """Indices of the literals ``head`` contains (case-folded ones in any case)."""
        if self.scanner is None:
            low = head.lower()
            return frozenset(i for i, (lit, fold) in enumerate(self.db.literals) if lit in (low if fold else head))
        if self._scratch is None:
            import hyperscan

            self._scratch = hyperscan.Scratch(self.scanner)
        found: set[int] = set()
        self.scanner.scan(head, match_event_handler=lambda i, *_: found.add(i), scratch=self._scratch)
        return frozenset(found)

    def database(self, head: bytes) -> int:
        """The id of the smallest reduced database that answers for ``head`` as the whole one does."""
        if head.isascii():                                          # C-speed; then only odd bytes are searched
            odd = head.translate(None, _ASCII_TEXT)
            ascii_text, no_control = not odd, _CONTROL.search(odd) is None
        else:
            ascii_text, no_control = False, _CONTROL.search(head) is None
        size = next(s for s in _SIZES if s <= len(head))
        key = (head[0] if head else None, ascii_text, no_control, self.present(head), size)
        cls = self._classes.get(key)
        if cls is None:
            if len(self._classes) > CLASSES:                            # bounded: forget classes, keep handles
                self._classes.clear(), self._ids.clear(), self._borrow.clear()
                self._kept = {i: k for i, k in self._kept.items() if i in self._handles}
                self._wanted = {i: n for i, n in self._wanted.items() if i in self._kept}
            ab, a, risky = self.db.kept(*key)
            cls = self._classes[key] = (self._ident(ab), self._ident(a), risky)
        return cls[1] if cls[2] and self.db.reaches_indirect(cls[2], head) else cls[0]

    def kept(self, ident: int) -> int:
        """The mask of the groups database ``ident`` keeps."""
        return self._kept[ident]

    def __call__(self, head: bytes, flags: int = 0) -> str:
        return self._handle(self.database(head))(head, flags)

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
