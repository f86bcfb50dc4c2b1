"""Hex strings to fixed-width binary rows, a whole batch at a time.

Workers hand the matcher hashes as hex strings; decoding them one by one with
``bytes.fromhex`` would cost more than the index lookup itself. Here a batch is
joined into one buffer and decoded with a 256-entry table, so the per-hash cost
is a few numpy passes. Anything that is not exactly ``2 * width`` hex digits is
reported invalid (and is therefore a miss), never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: nibble value of each byte; 255 marks a byte that is not a hex digit
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _i
_NIBBLE.setflags(write=False)


def decode_ascii(buf: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode an ``(n, 2*width)`` uint8 array of ASCII hex into ``(n, width)`` rows.

    Returns ``(rows, valid)``; rows of invalid input are left zero.
    """
    nib = _NIBBLE[buf]
    valid = ~(nib == 255).any(axis=1)
    rows = (nib[:, 0::2] << 4) | nib[:, 1::2]
    if not valid.all():
        rows[~valid] = 0
    return rows, valid


def decode_hex(values: Sequence[str | None], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode a batch of hex strings (any case) into ``(rows, valid)``.

    ``rows`` is ``(len(values), width)`` uint8; ``valid[i]`` is False for None,
    non-strings, wrong lengths and non-hex characters.
    """
    n = len(values)
    digits = 2 * width
    rows = np.zeros((n, width), dtype=np.uint8)
    if n == 0:
        return rows, np.zeros(0, dtype=bool)
    joined: str | None = None
    try:
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)  # type: ignore[arg-type]
        if (lengths == digits).all():
            joined = "".join(values)  # type: ignore[arg-type]  # TypeError unless all str
    except TypeError:  # a None or a non-str somewhere: take the careful path
        lengths = np.fromiter(
            (len(v) if isinstance(v, str) else -1 for v in values), dtype=np.int64, count=n
        )
    if joined is not None:  # the common case: every value is a str of the right length
        return decode_ascii(_ascii_rows(joined, digits), width)
    ok = (lengths == digits) & np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=n)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return rows, ok
    decoded, good = decode_ascii(_ascii_rows("".join([values[i] for i in idx]), digits), width)  # type: ignore[misc]
    rows[idx] = decoded
    ok[idx] = good
    return rows, ok


def _ascii_rows(joined: str, digits: int) -> np.ndarray:
    # latin-1 keeps one byte per character, so a stray non-ASCII character
    # cannot shift the fixed-width layout; "replace" turns it into "?" (not hex).
    blob = joined.encode("latin-1", "replace")
    return np.frombuffer(blob, dtype=np.uint8).reshape(-1, digits)


def rows_to_hex(rows: np.ndarray) -> list[str]:
    """Lower-case hex of each row: for reports and tests, not for hot paths."""
    return [bytes(r).hex() for r in np.asarray(rows, dtype=np.uint8)]
