"""One bare hash per line (MD5, SHA-1 or SHA-256, told apart by length).

The lowest common denominator of hash lists: what ``cut -c1-32`` or a vendor
export leaves. ``#`` comments and blank lines are allowed; a line that is not
32, 40 or 64 hex digits is malformed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from triage.rules.formats import Entry, hashset_format
from triage.rules.formats._lines import BY_LENGTH, first_lines, is_hex, iter_lines


@hashset_format("bare")
class BareHashes:
    NAME = "bare"
    DESCRIPTION = "one MD5, SHA-1 or SHA-256 per line (hex, any case; # comments)"
    PRIORITY = 90
    UNIT = "line"

    def sniff(self, head: bytes, path: Path) -> bool:
        lines = [ln for ln in first_lines(head, 20) if not ln.startswith(b"#")]
        return bool(lines) and all(
            len(ln) in BY_LENGTH and is_hex(ln.decode("latin-1")) for ln in lines[:5]
        )

    def iter_entries(self, fileobj: BinaryIO) -> Iterator[Entry]:
        for number, raw in iter_lines(fileobj):
            if raw is None:
                yield Entry(number, error="line too long")
                continue
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            value = line.decode("latin-1")
            algorithm = BY_LENGTH.get(len(value))
            if algorithm is None:
                yield Entry(number, error=f"not a hash: {len(value)} characters")
            else:
                yield Entry(number, **{algorithm: value})
