"""NSRL RDS 2.x ``NSRLFile.txt`` (the legacy CSV releases, up to 2.75).

The header is ``"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode",
"OpSystemCode","SpecialCode"`` and every value is quoted. Releases are tens of
millions of lines, so the usual line (SHA-1 and MD5 at fixed offsets) is sliced
directly; anything else goes through the ``csv`` module. CRC32 is not kept: it
is too short to identify a file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from triage.rules.errors import HashSetFormatError
from triage.rules.formats import Entry, hashset_format
from triage.rules.formats._lines import first_lines, iter_lines, text

_HEADER = b'"SHA-1","MD5"'
_COLUMNS = {"sha-1": "sha1", "md5": "md5"}


@hashset_format("nsrl-rds2")
class NsrlRds2:
    NAME = "nsrl-rds2"
    DESCRIPTION = 'NSRL RDS 2.x NSRLFile.txt (quoted CSV, header "SHA-1","MD5","CRC32",...)'
    PRIORITY = 30
    UNIT = "line"

    def sniff(self, head: bytes, path: Path) -> bool:
        lines = first_lines(head, 1)
        return bool(lines) and lines[0].upper().startswith(_HEADER)

    def iter_entries(self, fileobj: BinaryIO) -> Iterator[Entry]:
        positions: dict[str, int] | None = None
        fast = False
        for number, raw in iter_lines(fileobj):
            if raw is None:
                yield Entry(number, error="line too long")
                continue
            if not raw.strip():
                continue
            if positions is None:
                positions = self._header(raw, fileobj)
                fast = positions == {"sha1": 0, "md5": 1}
                continue
            if fast and len(raw) > 77 and raw[0] == 34 and raw[41:44] == b'","' and raw[76] == 34:
                yield Entry(number, sha1=raw[1:41].decode("latin-1"), md5=raw[44:76].decode("latin-1"))
                continue
            yield self._slow(number, raw, positions)

    @staticmethod
    def _header(raw: bytes, fileobj: BinaryIO) -> dict[str, int]:
        name = getattr(fileobj, "name", "input")
        try:
            cells = next(csv.reader([text(raw)]), [])
        except csv.Error as exc:
            raise HashSetFormatError(f"{name}: unreadable NSRL RDS 2.x header: {exc}") from exc
        positions = {
            _COLUMNS[c.strip().lower()]: i for i, c in enumerate(cells) if c.strip().lower() in _COLUMNS
        }
        if not positions:
            raise HashSetFormatError(f"{name}: NSRL RDS 2.x header names no SHA-1 or MD5 column")
        return positions

    @staticmethod
    def _slow(number: int, raw: bytes, positions: dict[str, int]) -> Entry:
        try:
            cells = next(csv.reader([text(raw)]), [])
        except csv.Error as exc:
            return Entry(number, error=f"bad CSV: {exc}")
        if len(cells) <= max(positions.values()):
            return Entry(number, error=f"{len(cells)} fields")
        hashes = {alg: cells[i].strip() for alg, i in positions.items() if cells[i].strip()}
        if not hashes:
            return Entry(number, error="no SHA-1 or MD5 value")
        return Entry(number, **hashes)
