"""``md5sum`` / ``sha1sum`` / ``sha256sum`` output, plain or ``--tag`` (BSD) style.

Plain lines are ``HASH  NAME`` (text mode) or ``HASH *NAME`` (binary mode). GNU
coreutils marks a name containing a backslash or newline by starting the line
with ``\\`` and escaping ``\\\\``, ``\\n`` and ``\\r`` in the name. ``--tag`` lines are
``SHA256 (NAME) = HASH``. The algorithm comes from the hash length (or the tag),
so one module covers all three tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from triage.rules.formats import Entry, hashset_format
from triage.rules.formats._lines import BY_LENGTH, first_lines, iter_lines, text

_PLAIN = re.compile(rb"^(\\?)([0-9A-Fa-f]+) ([ *])(.*)$", re.DOTALL)
_TAGGED = re.compile(rb"^(\\?)(MD5|SHA1|SHA256) \((.*)\) = ([0-9A-Fa-f]+)$", re.DOTALL)
_TAGS = {b"MD5": "md5", b"SHA1": "sha1", b"SHA256": "sha256"}
_UNESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}


def unescape(name: str) -> str:
    """Undo coreutils' name escaping (only called for lines starting with a backslash)."""
    return _UNESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), name)


@hashset_format("md5sum", aliases=("sha1sum", "sha256sum"))
class SumFile:
    NAME = "md5sum"
    DESCRIPTION = "md5sum/sha1sum/sha256sum output ('HASH  NAME', '*' binary marker, '\\' escapes, --tag)"
    PRIORITY = 60
    UNIT = "line"

    def sniff(self, head: bytes, path: Path) -> bool:
        lines = [ln for ln in first_lines(head, 10) if not ln.startswith(b"#")]
        if not lines:
            return False
        good = 0
        for line in lines[:5]:
            m = _PLAIN.match(line)
            if (m and len(m.group(2)) in BY_LENGTH and m.group(4)) or _TAGGED.match(line):
                good += 1
        return good == len(lines[:5])

    def iter_entries(self, fileobj: BinaryIO) -> Iterator[Entry]:
        for number, raw in iter_lines(fileobj):
            if raw is None:
                yield Entry(number, error="line too long")
                continue
            if not raw.strip() or raw.startswith(b"#"):
                continue
            yield self._parse(number, raw)

    @staticmethod
    def _parse(number: int, raw: bytes) -> Entry:
        tagged = _TAGGED.match(raw)
        if tagged:
            escaped, tag, name, digest = tagged.groups()
            algorithm = _TAGS[tag]
        else:
            plain = _PLAIN.match(raw)
            if plain is None:
                return Entry(number, error="not 'HASH  NAME' or 'ALG (NAME) = HASH'")
            escaped, digest, _mode, name = plain.groups()
            found = BY_LENGTH.get(len(digest))
            if found is None:
                return Entry(number, error=f"hash of {len(digest)} digits")
            algorithm = found
        decoded = text(name)
        if escaped:
            decoded = unescape(decoded)
        return Entry(number, name=decoded, **{algorithm: digest.decode("ascii")})
