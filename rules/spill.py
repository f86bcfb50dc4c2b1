"""Parsed entries on their way to an index: checked, then appended to flat files.

A 50-million-line NSRL release must not become 50 million Python objects, so
each valid hash is decoded once and written as fixed-width bytes to
``<alg>.raw`` (plus a 2-byte category to ``<alg>.cat.raw``) in the build's
temporary folder; :mod:`triage.rules.index` later maps those files as numpy
arrays and sorts them. This is also the one place hash text is judged: a value
of the wrong length or with a non-hex digit makes its whole record malformed,
so it never reaches an index. Reasons name the problem, never the value: they
end up in logs and error messages, and hash-set entries must not.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import BinaryIO

import numpy as np

from triage.rules.formats import Entry
from triage.rules.index import WIDTHS

#: every algorithm a set can hold, with its digest size in bytes
ALL_WIDTHS = {**WIDTHS, "phash": 8}
#: how many malformed records are quoted in messages and reports
EXAMPLES = 5
_NO_CATEGORY = (-1).to_bytes(2, "little", signed=True)
#: (algorithm, digest bytes) in Entry's field order: entry[1:5] are exactly these hashes
_HASH_FIELDS = tuple((a, ALL_WIDTHS[a]) for a in Entry._fields[1:5])
assert {a for a, _ in _HASH_FIELDS} == set(ALL_WIDTHS)
_FLUSH = 1 << 20


class Spill:
    """Append-only per-algorithm row files in ``folder`` plus malformed-record bookkeeping."""

    def __init__(self, folder: Path, unit: str = "line") -> None:
        self.folder = folder
        self.unit = unit
        self.records = 0
        self.malformed = 0
        self.examples: list[str] = []
        self.counts = dict.fromkeys(ALL_WIDTHS, 0)
        self._files: dict[str, tuple[BinaryIO, BinaryIO]] = {}
        self._buffers: dict[str, tuple[bytearray, bytearray]] = {}
        self._names = open(folder / "phash.names.raw", "wb")  # noqa: SIM115 (closed in close())
        self._offsets = array("q", [0])

    def _buffer(self, algorithm: str) -> tuple[bytearray, bytearray]:
        if algorithm not in self._buffers:
            rows = open(self.folder / f"{algorithm}.raw", "wb")  # noqa: SIM115 (closed in close())
            cats = open(self.folder / f"{algorithm}.cat.raw", "wb")  # noqa: SIM115
            self._files[algorithm] = (rows, cats)
            self._buffers[algorithm] = (bytearray(), bytearray())
        return self._buffers[algorithm]

    def _flush(self, algorithm: str) -> None:
        rows, cats = self._buffers[algorithm]
        self._files[algorithm][0].write(rows)
        self._files[algorithm][1].write(cats)
        rows.clear()
        cats.clear()

    def bad(self, number: int, reason: str) -> None:
        self.records += 1
        self.malformed += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"{self.unit} {number}: {reason}")

    def add(self, entry: Entry) -> bool:
        """Check and store one entry; False (and counted) if it is malformed."""
        if entry.error is not None:
            self.bad(entry.line, entry.error)
            return False
        decoded = []
        for (algorithm, width), value in zip(_HASH_FIELDS, entry[1:5]):
            if value is None:
                continue
            raw = _unhex(value, width)
            if raw is None:  # the reason, never the value: hash-set entries stay out of logs
                why = f"{len(value)} characters" if len(value) != 2 * width else "a non-hex character"
                self.bad(entry.line, f"{algorithm} value has {why}, not {2 * width} hex digits")
                return False
            decoded.append((algorithm, raw))
        if not decoded:
            self.bad(entry.line, "no hash")
            return False
        category = entry.category
        if category is None:
            cat = _NO_CATEGORY
        elif 0 <= category <= 32767:
            cat = category.to_bytes(2, "little")
        else:
            self.bad(entry.line, f"category {category} out of range 0-32767")
            return False
        self.records += 1
        for algorithm, raw in decoded:
            rows, cats = self._buffers.get(algorithm) or self._buffer(algorithm)
            rows += raw
            cats += cat
            self.counts[algorithm] += 1
            if algorithm == "phash":
                self.add_name(entry.name or f"{self.unit} {entry.line}")
            if len(rows) >= _FLUSH:
                self._flush(algorithm)
        return True

    def add_rows(self, algorithm: str, rows: np.ndarray, cats: np.ndarray | None = None) -> None:
        """Append already-checked rows (a previous index being merged, or a benchmark's arrays)."""
        self._buffer(algorithm)
        self._flush(algorithm)
        out, cat_out = self._files[algorithm]
        out.write(np.ascontiguousarray(rows, dtype=np.uint8).tobytes())
        fill = np.full(rows.shape[0], -1, dtype="<i2") if cats is None else np.asarray(cats, dtype="<i2")
        cat_out.write(fill.tobytes())

    def add_name(self, name: str) -> None:
        data = name.encode("utf-8", "replace")
        self._names.write(data)
        self._offsets.append(self._offsets[-1] + len(data))

    def add_name_blob(self, blob: bytes, offsets: np.ndarray) -> None:
        """Append the ids of a previous phash index (``blob[offsets[i]:offsets[i+1]]``)."""
        base = self._offsets[-1]
        self._names.write(blob)
        self._offsets.extend(int(o) + base for o in offsets[1:])

    def close(self) -> None:
        """Flush and close every file (safe to call twice)."""
        for algorithm, (rows, cats) in self._files.items():
            if not rows.closed:
                self._flush(algorithm)
                rows.close()
                cats.close()
        self._names.close()

    def arrays(self, algorithm: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The spilled ``(rows, categories)`` of one algorithm, read back as arrays; None if empty."""
        path = self.folder / f"{algorithm}.raw"
        if algorithm not in self._files or path.stat().st_size == 0:
            return None
        width = ALL_WIDTHS[algorithm]
        rows = np.fromfile(path, dtype=np.uint8).reshape(-1, width)
        cats = np.fromfile(self.folder / f"{algorithm}.cat.raw", dtype="<i2").astype(np.int16)
        return rows, cats

    def names(self) -> tuple[bytes, np.ndarray]:
        """Reference ids of the phash rows: ``(blob, offsets)``."""
        return (self.folder / "phash.names.raw").read_bytes(), np.frombuffer(self._offsets, dtype=np.int64).copy()


def _unhex(value: str, width: int) -> bytes | None:
    if len(value) != 2 * width:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if len(raw) == width else None  # fromhex skips spaces: a short result means one was there
