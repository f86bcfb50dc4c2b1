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
  the test fails wherever and however far it looks. A group whose first test
  needs none is held to the literals of the ``search``/``regex`` lines every
  line of it that acts (prints, gives a MIME type, ``use``s a name, re-runs the
  database) continues: matching without acting changes nothing outside the
  group (``0 byte 0`` then a search for ".etl" in UTF-16: half the cost of
  unrecognised data that starts with a NUL). Literals of a control byte alone
  are not used so: most binary data holds them. Hyperscan finds all the
  literals in one pass. Text tests see libmagic's UTF-8 conversion of the
  buffer, not the buffer: they are only dropped when no byte of the buffer is a
  control character libmagic's text detection refuses, so the conversion keeps
  every ASCII substring (ASCII, UTF-8, ISO-8859, extended ASCII) or has none
  (UTF-16 without NUL bytes), never EBCDIC.
* (B) a ``string`` or numeric ``=`` test at offset 0 with a fixed first byte
  fails on a buffer starting with another byte; (E) one at a fixed offset that
  needs a byte text never holds (a NUL, a control byte, a byte over 0x7F for
  plain ASCII) fails on text at least that long. Binary tests only (B also
  text tests on plain ASCII, whose conversion is the buffer itself), and not
  when a group left may re-run the database on part of the buffer
  (``indirect``, directly or through ``use``d names): every way to such a line
  is checked (C) against the buffer (a JPEG re-runs it on an Exif block, so
  only where "Exif" is in the buffer), and where one stays open only (A) applies.
* (D) where libmagic's encoding detection finds no text (a NUL byte before the
  buffer's trailing NULs, which ascmagic strips, and no UTF-16 or UTF-32
  byte-order mark: every encoding libmagic tries, EBCDIC included, refuses a NUL
  then), libmagic never makes its text pass: the tests only that pass runs are
  all dropped, and a test of both passes (SVG's ``search/wctb``) is held to (A)
  and (B) on the buffer itself. On unrecognised binary data that one case-folding
  search cost 27 % of the description call's instructions (callgrind).
* Name definitions (``use`` targets) no kept group reaches are left out too:
  libmagic looks a name up by scanning all ~6,000 entries of its second set at
  every ``use``.

Anything the analysis does not recognise is kept, so the worst case is the whole
database. What each test needs is read from the database once per process
(:mod:`triage.workers.magicentries`); this module turns a class of buffers into the
groups kept, and the groups kept into a loadable copy. Where the database is not
one compiled file (a MAGIC variable, entries in /etc/magic), or libmagic or its
file format is not the version this argument was checked against, typing uses
python-magic as before (triage.workers.magictyper).

Measured (bench_magic.py, 1,245 files of the run benchmark, loaded 2-core machine):
libmagic's description call 0.43 -> ~0.13 CPU ms per file warm (text 1.7 -> ~0.2,
JPEG ~0.12 either way: its own segment walk prints a dozen numbers, and libmagic
5.44 compiles a regular expression to check each format string, 9 per JPEG);
identical answers on the benchmark, the corpus images and ~3,900 files of /usr
(description and MIME). Rule D and the continuation literals took a file's whole
warm typing from 1.155 M to 1.014 M instructions (callgrind; timings on the shared
machine moved too much to say more than ~0.12-0.14 CPU ms).
tests/workers/test_typing.py compares answers with `file`'s and the whole database's.
"""

from __future__ import annotations

import struct

import numpy as np

from triage.workers.magicentries import ENTRY, Entries, Group, fails

#: buffer lengths the rule (E) distinguishes: a test of the byte at offset k needs k < length
SIZES = (1024, 128, 0)


def _mask(keep: np.ndarray) -> int:
    return int.from_bytes(np.packbits(keep, bitorder="little").tobytes(), "little")


class Database:
    """The compiled magic database libmagic loads, as groups that can be left out per buffer."""

    def __init__(self, data: bytes) -> None:
        parsed = Entries(data)                                     # the static analysis (triage.workers.magicentries)
        self.data, self.n0 = data, parsed.n0
        self.groups, self.literals = parsed.groups, parsed.literals
        definitions, name_uses = parsed.definitions, parsed.name_uses     # only the `use` table below needs them
        self._tables()
        self._entry_group = np.repeat(np.arange(len(self.groups)), [g.end - g.start for g in self.groups])
        # which name definitions each group reaches through `use` chains, as a (groups x names) table
        index = {n: i for i, n in enumerate(dict.fromkeys(n for n, _, _ in definitions))}
        closure = {}
        for name in index:
            seen, todo = set(), {name}
            while todo:
                n = todo.pop()
                seen.add(n)
                todo |= name_uses.get(n, frozenset()) - seen
            closure[name] = [index[n] for n in seen if n in index]
        self._reach = np.zeros((len(self.groups), len(index)), dtype=bool)
        for i, g in enumerate(self.groups):
            for name in g.uses:
                self._reach[i, closure.get(name, [])] = True
        self._entry_name = np.repeat([index[n] for n, _, _ in definitions], [b - a for _, a, b in definitions])

    def _tables(self) -> None:
        """The groups' rules as arrays, so that a class of buffers is worked out in a few vector steps."""
        g, n = self.groups, len(self.literals)
        width = max((len(x.literal) for x in g if x.literal), default=1)
        self._lit = np.array([list(x.literal or ()) + [n] * (width - len(x.literal or ())) for x in g])
        self._has_lit = np.array([x.literal is not None for x in g])
        self._text = np.array([x.text for x in g])
        self._text_only = self._text & ~np.array([x.binary for x in g])
        self._routes = np.array([bool(x.routes) for x in g])
        self._first_bad = np.zeros((256, len(g)), dtype=bool)
        for i, x in enumerate(g):
            if x.first is not None:
                self._first_bad[:, i] = True
                self._first_bad[list(x.first), i] = False
        far = 1 << 30
        self._alien = {True: np.array([far if x.text or x.alien_ascii is None else x.alien_ascii for x in g]),
                       False: np.array([far if x.text or x.alien_text is None else x.alien_text for x in g])}

    def kept(self, first: int | None, ascii_text: bool, no_control: bool, present: frozenset[int],
             size: int = 0, no_text: bool = False) -> tuple[int, int, list[Group]]:
        """For a class of buffers, as bit masks over :attr:`groups`: (the groups that may match, the
        same without the rules B and E, the groups left that may re-run the database on a
        sub-buffer, where B and E do not hold). ``no_text``: libmagic makes no text pass (D)."""
        hit = np.zeros(len(self.literals) + 1, dtype=bool)
        hit[list(present)] = True
        raw = ~self._text | no_control | no_text                  # tests that see the buffer's own bytes
        a_keep = ~(self._has_lit & ~hit[self._lit].any(axis=1) & raw)                          # (A)
        if no_text:
            a_keep &= ~self._text_only                                                          # (D)
        ab_keep = a_keep
        if first is not None:
            b_fail = self._first_bad[first] & (~self._text | ascii_text | no_text)              # (B)
            if no_control:
                b_fail |= self._alien[ascii_text] < size                                        # (E)
            ab_keep = a_keep & ~b_fail
        risky = [self.groups[i] for i in np.flatnonzero(ab_keep & self._routes)] if first is not None else []
        return _mask(ab_keep), _mask(a_keep), risky

    def reaches_indirect(self, groups: list[Group], head: bytes) -> bool:
        """Whether any of ``groups`` may reach an ``indirect`` test on ``head`` (no route provably closed)."""
        for g in groups:
            if g.top is not None and fails(g.top, head):
                continue
            for route in g.routes:
                if not any(fails(t, head) for t in route):
                    return True
        return False

    def compiled(self, kept: int) -> bytes:
        """A version-18 .mgc holding the ``kept`` groups of set 0 and the name definitions they can
        reach (set 1), each in its order. libmagic finds a `use`'s definition by scanning set 1 entry
        by entry, ~6,000 of them for every `use` (a JPEG's segment walk makes dozens): only the
        definitions reachable from the kept groups are left to scan."""
        bits = np.unpackbits(np.frombuffer(kept.to_bytes((len(self.groups) + 7) // 8, "little"), np.uint8),
                             bitorder="little")[: len(self.groups)].astype(bool)
        reach = self._reach[bits].any(axis=0)                     # names any kept group may `use`
        rows = np.frombuffer(self.data, np.uint8)[ENTRY:].reshape(-1, ENTRY)
        body = rows[: self.n0][bits[self._entry_group]].tobytes()
        names = rows[self.n0:][reach[self._entry_name]].tobytes()
        header = bytearray(self.data[:ENTRY])
        struct.pack_into("<II", header, 8, len(body) // ENTRY, len(names) // ENTRY)
        return bytes(header) + body + names
