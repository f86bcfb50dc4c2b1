"""hashdeep (and md5deep/sha1deep ``-d``-less known-file) audit files.

Layout::

    %%%% HASHDEEP-1.0
    %%%% size,md5,sha256,filename
    ## Invoked from: /evidence
    5,1b2c...,9f86...,/evidence/a.txt

The second ``%%%%`` line names the columns; ``filename`` is always last and may
itself contain commas, so each line is split at most ``columns - 1`` times.
Columns other than md5/sha1/sha256 (size, tiger, whirlpool) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from triage.rules.errors import HashSetFormatError
from triage.rules.formats import Entry, hashset_format
from triage.rules.formats._lines import first_lines, iter_lines, text

_MAGIC = b"%%%% HASHDEEP-"
_WANTED = ("md5", "sha1", "sha256")


@hashset_format("hashdeep")
class HashDeep:
    NAME = "hashdeep"
    DESCRIPTION = "hashdeep audit file ('%%%% HASHDEEP-1.0' header, '%%%% size,md5,...' columns)"
    PRIORITY = 20
    UNIT = "line"

    def sniff(self, head: bytes, path: Path) -> bool:
        lines = first_lines(head, 1)
        return bool(lines) and lines[0].startswith(_MAGIC)

    def iter_entries(self, fileobj: BinaryIO) -> Iterator[Entry]:
        columns: list[str] | None = None
        for number, raw in iter_lines(fileobj):
            if raw is None:
                yield Entry(number, error="line too long")
                continue
            line = raw.strip()
            if not line or line.startswith(b"##"):
                continue
            if line.startswith(b"%%%%"):
                if not line.startswith(_MAGIC):
                    columns = [c.strip().lower() for c in text(line[4:]).split(",")]
                    if not any(alg in columns for alg in _WANTED):
                        raise HashSetFormatError(
                            f"{_name(fileobj)}: hashdeep columns {','.join(columns)} have no md5, sha1 or sha256"
                        )
                continue
            if columns is None:
                raise HashSetFormatError(f"{_name(fileobj)}: hashdeep file without a '%%%% size,md5,...' column line")
            yield self._parse(number, text(raw), columns)

    @staticmethod
    def _parse(number: int, line: str, columns: list[str]) -> Entry:
        fields = line.split(",", len(columns) - 1)
        if len(fields) != len(columns):
            return Entry(number, error=f"{len(fields)} fields, header has {len(columns)}")
        row = dict(zip(columns, fields))
        hashes = {alg: row[alg].strip() for alg in _WANTED if row.get(alg, "").strip()}
        if not hashes:
            return Entry(number, error="no md5, sha1 or sha256 value")
        return Entry(number, name=row.get("filename"), **hashes)


def _name(fileobj: BinaryIO) -> str:
    return str(getattr(fileobj, "name", "input"))
