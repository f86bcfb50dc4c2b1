"""CSV (or tab/semicolon separated) with a header naming the hash column(s).

Header cells are matched case-insensitively with punctuation ignored, so
``MD5``, ``SHA-1``, ``sha_256`` and ``pHash`` all count. Optional columns: a
``category`` integer kept per entry, and a name column (``name``, ``filename``,
``file_name``, ``path``, ``id``) used as the reference id of perceptual hashes.
An empty cell means "no value"; a row with no value at all is malformed.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from triage.rules.errors import HashSetFormatError
from triage.rules.formats import Entry, hashset_format
from triage.rules.formats._lines import first_lines, iter_lines, text

_HASHES = ("md5", "sha1", "sha256", "phash")
_NAMES = ("name", "filename", "path", "filepath", "id", "mediaid")
_DELIMITERS = (",", "\t", ";")


def _norm(cell: str) -> str:
    return re.sub(r"[^a-z0-9]", "", cell.strip().lower())


def _delimiter(header: str) -> str:
    return max(_DELIMITERS, key=header.count)


def _columns(header: str) -> tuple[str, dict[str, int]]:
    delimiter = _delimiter(header)
    cells = next(csv.reader([header], delimiter=delimiter), [])
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        key = _norm(cell)
        if key in _HASHES or key == "category":
            found.setdefault(key, i)
        elif key in _NAMES and "name" not in found:
            found["name"] = i
    return delimiter, found


@hashset_format("csv")
class CsvHashes:
    NAME = "csv"
    DESCRIPTION = "CSV/TSV with a header naming md5, sha1, sha256 and/or phash columns"
    PRIORITY = 70
    UNIT = "line"

    def sniff(self, head: bytes, path: Path) -> bool:
        lines = first_lines(head, 1)
        if not lines:
            return False
        header = text(lines[0])
        if not any(d in header for d in _DELIMITERS) and _norm(header) not in _HASHES:
            return False
        try:
            _, found = _columns(header)
        except csv.Error:
            return False
        return any(k in found for k in _HASHES)

    def iter_entries(self, fileobj: BinaryIO) -> Iterator[Entry]:
        layout: tuple[str, dict[str, int]] | None = None
        for number, raw in iter_lines(fileobj):
            if raw is None:
                yield Entry(number, error="line too long")
                continue
            if not raw.strip():
                continue
            line = text(raw)
            if layout is None:
                name = getattr(fileobj, "name", "input")
                try:
                    layout = _columns(line)
                except csv.Error as exc:
                    raise HashSetFormatError(f"{name}: unreadable CSV header: {exc}") from exc
                if not any(k in layout[1] for k in _HASHES):
                    raise HashSetFormatError(f"{name}: CSV header names no md5, sha1, sha256 or phash column")
                continue
            yield self._row(number, line, *layout)

    @staticmethod
    def _row(number: int, line: str, delimiter: str, columns: dict[str, int]) -> Entry:
        try:
            cells = next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error as exc:
            return Entry(number, error=f"bad CSV: {exc}")
        values = {k: cells[i].strip() for k, i in columns.items() if i < len(cells) and cells[i].strip()}
        hashes = {k: v for k, v in values.items() if k in _HASHES}
        if not hashes:
            return Entry(number, error="no hash value in the row")
        category: int | None = None
        if "category" in values:
            try:
                category = int(values["category"])
            except ValueError:
                return Entry(number, error="category is not an integer")
        return Entry(number, name=values.get("name"), category=category, **hashes)
