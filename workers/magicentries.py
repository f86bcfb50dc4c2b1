"""What each top-level test of libmagic's compiled database needs from a buffer: the static half
of the reduced databases (:mod:`triage.workers.magicdb` gives the argument and the rules A-E).

:class:`Entries` reads a version-18 ``magic.mgc`` once per process: its entries, the
name definitions ``use`` lines call, and for each top-level test (a :class:`Group`
with its continuation lines) the literal one of which the buffer must contain (A),
the bytes its first offsets must hold (B, E), and every way it can reach an
``indirect`` re-run of the database, as tests (C) that :func:`fails` can check on a
buffer. Nothing here depends on a buffer: the per-buffer masks and the reduced
copies are :class:`triage.workers.magicdb.Database`'s.
"""

from __future__ import annotations

import functools
import re
import struct
import sys
from dataclasses import dataclass

from triage.workers.magicere import MIN_LITERAL, Ere, useful

ENTRY, _MGC_MAGIC, _MGC_VERSION = 376, 0xF11E041C, 18          # struct magic of libmagic 5.44 (version 18)
_STRING, _REGEX, _SEARCH, _INDIRECT, _NAME, _USE = 5, 17, 20, 41, 45, 46
#: byte, short, long, beshort, belong, leshort, lelong: (size, byte order); short and long are the host's
_NUMBERS = {1: (1, "little"), 2: (2, sys.byteorder), 4: (4, sys.byteorder), 7: (2, "big"), 8: (4, "big"),
            10: (2, "little"), 11: (4, "little")}
_INDIR, _OFFNEGATIVE, _BINTEST, _TEXTTEST = 0x01, 0x80, 0x20, 0x40
#: where a struct magic holds its description, MIME type, Apple type and extension (each a C string)
_ANNOTATIONS = (160, 224, 304, 312)
_CASE = 0x4 | 0x8                                                # STRING_IGNORE_LOWERCASE | STRING_IGNORE_UPPERCASE
_WHITESPACE = 0x1 | 0x2                                          # STRING_COMPACT_(OPTIONAL_)WHITESPACE
#: string flags that do not change which bytes must be present (printing, text/binary, range units)
_SAFE_FLAGS = _CASE | _WHITESPACE | 0x10 | 0x20 | 0x40 | 0x800 | 0x2000 | 0x4000
_SPACE = b" \t\n\v\f\r"
#: the bytes of ASCII text as libmagic recognises it (looks_ascii): such a buffer is its own UTF-8 conversion
ASCII_TEXT = bytes([*range(0x07, 0x0E), 0x1B, *range(0x20, 0x7F)])
#: a byte no ASCII-compatible text has (a stricter set than libmagic's): EBCDIC, UTF-32 or binary may follow
CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
NO_CONTROL = bytes([0x09, 0x0A, 0x0C, 0x0D, *range(0x20, 0x7F), *range(0x80, 0x100)])
_ASCII_SET, _NO_CONTROL_SET = frozenset(ASCII_TEXT), frozenset(NO_CONTROL)


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
    literal: tuple[int, ...] | None   # indices into Entries.literals, one of which the buffer must contain (A)
    routes: tuple[tuple, ...]         # ways to an `indirect` re-run of the database, as tests that must hold
    top: tuple | None                 # the first test, where simple enough to evaluate (C)
    uses: frozenset[bytes]            # names of the definitions its `use` lines call


@functools.cache
def _masked(mask: int, value: int) -> frozenset[int]:
    """The bytes ``b`` with ``b & mask == value``: one set per (mask, value), shared by every test."""
    return frozenset(b for b in range(256) if b & mask == value)


def _cstr(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


class Entries:
    """A compiled magic database read once: its groups, their literals, and the name definitions."""

    def __init__(self, data: bytes) -> None:
        magic_no, version, n0, n1 = struct.unpack_from("<4I", data, 0)
        if magic_no != _MGC_MAGIC or version != _MGC_VERSION or len(data) != ENTRY * (1 + n0 + n1):
            raise ValueError(f"not a version {_MGC_VERSION} magic.mgc")
        self.data, self.n0 = data, n0
        self.entries = [struct.unpack_from("<HBBBBBBBBBBiiIQ", data, ENTRY * (1 + i)) for i in range(n0 + n1)]
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
        # names whose definitions may reach an `indirect` line (directly, through `use`, or through a name
        # not defined, which is assumed to): only groups that contain or `use` one have routes to work out
        reaching = {n for n, a, b in self.definitions if any(self.entries[i][5] == _INDIRECT for i in range(a, b))}
        grown = True
        while grown:
            grown = False
            for n, used in self.name_uses.items():
                if n not in reaching and any(u in reaching or u not in self.names for u in used):
                    reaching.add(n)
                    grown = True
        starts = [i for i in range(n0) if self.entries[i][0] == 0] + [n0]
        literals: dict[tuple[bytes, bool], int] = {}
        self.groups: list[Group] = []
        for start, end in zip(starts, starts[1:]):
            e = self.entries[start]
            clause = self._literal(start, e) or self._guarded(start, end)
            idx = tuple(literals.setdefault(lit, len(literals)) for lit in clause) if clause else None
            binary_only = bool(e[1] & _BINTEST) and not e[1] & _TEXTTEST
            uses = self._uses(start, end)
            may_reach = any(u in reaching or u not in self.names for u in uses) or any(
                self.entries[i][5] == _INDIRECT for i in range(start + 1, end))
            routes = tuple(self._routes(start, end, binary_only)) if may_reach else ()
            needs = self._needs(start, e)
            self.groups.append(Group(start, end, bool(e[1] & _BINTEST), bool(e[1] & _TEXTTEST), needs.get(0),
                                     self._alien(needs, _ASCII_SET), self._alien(needs, _NO_CONTROL_SET), idx, routes,
                                     self._test(start, e) if routes and binary_only else None, uses))
        self.literals = list(literals)                            # (literal, case-folded)

    @staticmethod
    def _alien(needs: dict[int, frozenset[int]], alphabet: frozenset[int]) -> int | None:
        return min((k for k, allowed in needs.items() if allowed.isdisjoint(alphabet)), default=None)

    def _value(self, i: int, vallen: int) -> bytes:
        at = ENTRY * (1 + i) + 32
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
            value = struct.unpack_from("<Q", self.data, ENTRY * (1 + i) + 32)[0]
            keep = mask or (1 << (8 * size)) - 1
            for k in range(size):
                shift = 8 * (size - 1 - k if order == "big" else k)
                mb, vb = (keep >> shift) & 0xFF, (value >> shift) & 0xFF
                if mb:
                    needs[off + k] = _masked(mb, vb & mb)
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
        value = struct.unpack_from("<Q", self.data, ENTRY * (1 + i) + 32)[0]
        if reln == ord("="):
            return ("=", off, size, order, (mask or full) & full, value & full)
        if reln in b"<>" and flag & 0x08:                         # UNSIGNED: no sign extension
            return (chr(reln), off, size, order, (mask or full) & full, value)
        return None

    def _guarded(self, lo: int, hi: int) -> tuple[tuple[bytes, bool], ...] | None:
        """(literal, case-folded) pairs one of which the buffer must contain for group ``[lo, hi)``
        to do anything (A), where its first test needs none: every line that prints, annotates,
        ``use``s a name or re-runs the database runs only after a ``search``/``regex`` line that
        needs a literal (itself, or one of the lines it continues); None where one does not. A
        group that matches without doing anything leaves nothing behind: its state is its own."""
        need: dict[tuple[bytes, bool], None] = {}
        last: dict[int, tuple | None] = {}
        for i in range(lo, hi):
            e = self.entries[i]
            level, own = e[0], self._literal(i, e)
            if own and not all(len(lit) >= MIN_LITERAL for lit, _ in own):
                own = None                                       # a control byte: in most binary data
            if self._acts(i, e):
                guards = [c for c in (*(last.get(k) for k in range(level)), own) if c]
                if not guards:
                    return None
                need.update(dict.fromkeys(min(guards, key=len)))
            last[level] = own
            for k in [k for k in last if k > level]:
                del last[k]
        return tuple(need) or None

    def _acts(self, i: int, e: tuple) -> bool:
        """Whether line ``i`` does something when it matches: prints its description, gives a MIME
        type, Apple type or extension, calls a name or re-runs the database."""
        at = ENTRY * (1 + i)
        return e[5] in (_USE, _INDIRECT, _NAME) or any(self.data[at + k] for k in _ANNOTATIONS)

    def _literal(self, i: int, e: tuple) -> tuple[tuple[bytes, bool], ...] | None:
        """(literal, case-folded) pairs one of which the buffer must contain for ``search``/``regex``
        entry ``i`` to match (A)."""
        typ, reln, vallen, flags = e[5], e[3], e[4], e[14] >> 32
        if typ not in (_SEARCH, _REGEX) or reln != ord("=") or flags & ~_SAFE_FLAGS:
            return None
        value = _cstr(self._value(i, vallen)) if typ == _REGEX else self._value(i, vallen)
        if typ == _REGEX:
            clause = Ere(value).requirement()
        else:
            pieces = re.split(rb"[ \t\n\v\f\r]+", value) if flags & _WHITESPACE else [value]
            clause = (max(pieces, key=len),)
        fold = bool(flags & _CASE)
        if not clause or not all(useful(lit) for lit in clause) or (fold and not all(x.isascii() for x in clause)):
            return None
        return tuple((lit.lower() if fold else lit, fold) for lit in clause)


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
