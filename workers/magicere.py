"""The literals a POSIX extended regular expression cannot match without (libmagic's ``regex`` tests).

triage.workers.magicdb leaves a ``regex`` test out of the database for a buffer that
contains none of them. Only what is certain counts: a run of plain characters
with no quantifier that could skip one, the alternatives of a group that must
occur; anything unfamiliar (an unknown escape, a back-reference) ends a run, and
an expression whose structure is not understood requires nothing.
"""

from __future__ import annotations

#: shortest literal worth a filter: shorter ones are in most 8 KiB buffers anyway
MIN_LITERAL = 4


def useful(lit: bytes) -> bool:
    """Whether a literal is worth a filter: long enough, or control bytes only (a tab is rare in prose)."""
    return len(lit) >= MIN_LITERAL or (bool(lit) and all(c < 0x20 and c not in b"\n\r" for c in lit))


class _Bail(Exception):
    pass


class Ere:
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
