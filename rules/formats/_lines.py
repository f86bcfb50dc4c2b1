"""Shared reading helpers for the text formats: bounded lines and hex checks.

A hash-set file may be hostile or simply broken (a 10 GB file without a newline);
reading it line by line with a cap keeps memory bounded whatever it contains.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import BinaryIO

from triage.rules.formats import HEAD_SIZE

#: longest line kept; longer lines are skipped (and reported) without being held in memory
MAX_LINE = 64 * 1024

_HEX = frozenset(string.hexdigits)
_BOM = b"\xef\xbb\xbf"


def iter_lines(fileobj: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(line_number, line)`` without its end-of-line; ``None`` for over-long lines."""
    number = 0
    while True:
        line = fileobj.readline(MAX_LINE + 1)
        if not line:
            return
        number += 1
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while True:  # drop the rest of the line, a bounded piece at a time
                rest = fileobj.readline(MAX_LINE + 1)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line.rstrip(b"\r\n")


def first_lines(head: bytes, count: int = 5) -> list[bytes]:
    """Up to ``count`` non-blank lines of a file's head, BOM removed (for ``sniff``)."""
    if head.startswith(_BOM):
        head = head[len(_BOM):]
    lines = [ln.strip() for ln in head.split(b"\n")]
    # the last piece may be cut mid-line by the head size: keep it only if it is all there
    if len(head) >= HEAD_SIZE and not head.endswith(b"\n") and len(lines) > 1:
        lines = lines[:-1]
    return [ln for ln in lines if ln][:count]


def is_hex(text: str) -> bool:
    """True for a non-empty string of hex digits only."""
    return bool(text) and all(c in _HEX for c in text)


def text(raw: bytes) -> str:
    """Decode a field as UTF-8; bad bytes become U+FFFD (names only, never hashes)."""
    return raw.decode("utf-8", "replace")


#: hash algorithm by hex length, for formats whose lines do not say which one
BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}
