"""Compiled exact-hash indexes: sorted fixed-width arrays on disk, memory-mapped by workers.

One algorithm of one set is four ``.npy`` files in the set's folder::

    sha1.key.npy   uint64 (n,)       first 8 bytes of each hash as a big-endian number; sorted
    sha1.rest.npy  uint8  (n, w-8)   the remaining bytes, in the same order
    sha1.dir.npy   int64  (2**b+1,)  where each run of equal top-``b`` key bits starts
    sha1.cat.npy   int16  (n,)       per-entry category, -1 for none (only if the source had any)

The key column is split out so lookups binary-search one contiguous native
``uint64`` array (no per-call copy of a strided view), and ``np.load(...,
mmap_mode="r")`` maps it read-only: every worker on a host shares one copy in
the page cache. The directory narrows each search to a few dozen entries, so a
batch lookup costs a handful of vectorised gathers instead of ~26 cache-missing
binary-search steps per hash.

Building takes an ``(n, w)`` uint8 array (the importer spills parsed rows to a
file and maps it) and sorts with numpy only; rows whose first 8 bytes collide
are ordered by the rest, and exact duplicates are dropped, first occurrence wins.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: digest size in bytes of each exact-hash algorithm
WIDTHS = {"md5": 16, "sha1": 20, "sha256": 32}
#: the directory aims at about this many entries per bucket
_PER_BUCKET = 8
_MAX_BITS = 26


def _keys(rows: np.ndarray) -> np.ndarray:
    """Big-endian first 8 bytes of each row as native uint64."""
    return np.ascontiguousarray(rows[:, :8]).view(">u8").ravel().astype(np.uint64)


def _words(rest: np.ndarray) -> list[np.ndarray]:
    """The rest bytes as big-endian uint64 columns, most significant first (for lexsort)."""
    m, r = rest.shape
    padded = np.zeros((m, -(-r // 8) * 8), dtype=np.uint8)
    padded[:, :r] = rest
    as_words = padded.view(">u8").astype(np.uint64)
    return [as_words[:, i] for i in range(as_words.shape[1])]


def sort_unique(rows: np.ndarray, cats: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Sort ``(n, w)`` hash rows and drop duplicates; returns ``(key, rest, cats)``."""
    n = rows.shape[0]
    key = _keys(rows)
    order = np.argsort(key)  # not stable: ties are re-ordered below with the input position
    key = key[order]
    rest = rows[order, 8:]
    cats = None if cats is None else cats[order]
    same = key[1:] == key[:-1]
    if not same.any():
        return key, rest, cats
    tied = np.zeros(n, dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    idx = np.flatnonzero(tied)
    # idx lists whole groups of equal keys in key order; sorting them by
    # (key, rest, input position) and writing back keeps every group in place.
    perm = np.lexsort([order[idx], *reversed(_words(rest[idx])), key[idx]])
    sel = idx[perm]
    rest[idx] = rest[sel]
    if cats is not None:
        cats[idx] = cats[sel]
    pos = np.flatnonzero(same)
    dup = np.zeros(n, dtype=bool)
    dup[pos + 1] = (rest[pos + 1] == rest[pos]).all(axis=1)
    keep = ~dup
    return key[keep], rest[keep], None if cats is None else cats[keep]


def directory(key: np.ndarray) -> np.ndarray:
    """Bucket start offsets by the top bits of the sorted keys (``len == 2**bits + 1``)."""
    n = key.shape[0]
    bits = 0
    while bits < _MAX_BITS and (n >> bits) > _PER_BUCKET:
        bits += 1
    if bits == 0:
        return np.array([0, n], dtype=np.int64)
    starts = np.arange(1 << bits, dtype=np.uint64) << np.uint64(64 - bits)
    return np.append(np.searchsorted(key, starts, side="left"), n).astype(np.int64)


def write_index(folder: Path, algorithm: str, rows: np.ndarray, cats: np.ndarray | None) -> int:
    """Sort, de-duplicate and save one algorithm's index; returns the distinct count."""
    key, rest, cats = sort_unique(rows, cats)
    np.save(folder / f"{algorithm}.key.npy", key)
    np.save(folder / f"{algorithm}.rest.npy", rest)
    np.save(folder / f"{algorithm}.dir.npy", directory(key))
    if cats is not None and (cats >= 0).any():
        np.save(folder / f"{algorithm}.cat.npy", cats)
    log.debug("wrote %s index: %d distinct of %d", algorithm, key.shape[0], rows.shape[0])
    return int(key.shape[0])


class HashIndex:
    """One algorithm of one set, mapped read-only on first use (cheap to construct)."""

    def __init__(self, folder: Path, algorithm: str) -> None:
        self.folder = folder
        self.algorithm = algorithm
        self.width = WIDTHS[algorithm]
        self._maps: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int] | None = None

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int]:
        if self._maps is None:
            stem = self.folder / self.algorithm
            key = np.load(f"{stem}.key.npy", mmap_mode="r")
            rest = np.load(f"{stem}.rest.npy", mmap_mode="r")
            dirs = np.load(f"{stem}.dir.npy", mmap_mode="r")
            cat_path = Path(f"{stem}.cat.npy")
            cats = np.load(cat_path, mmap_mode="r") if cat_path.exists() else None
            widest = int(np.diff(dirs).max()) if dirs.shape[0] > 1 else 0
            self._maps = (key, rest, dirs, cats, max(1, widest).bit_length())
        return self._maps

    def __len__(self) -> int:
        return int(self._load()[0].shape[0])

    def find(self, rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Index of each ``(m, w)`` row in the set, or -1; invalid rows are misses."""
        key, rest, dirs, _cats, steps = self._load()
        n = key.shape[0]
        found = np.full(rows.shape[0], -1, dtype=np.int64)
        if n == 0 or rows.shape[0] == 0:
            return found
        qkey = _keys(rows)
        bits = (dirs.shape[0] - 1).bit_length() - 1
        bucket = (qkey >> np.uint64(64 - bits)).astype(np.intp) if bits else np.zeros(len(qkey), np.intp)
        lo = dirs[bucket]
        hi = dirs[bucket + 1]
        for _ in range(steps):  # lower bound within each bucket, all queries at once
            active = lo < hi
            mid = (lo + hi) >> 1
            below = (key[np.minimum(mid, n - 1)] < qkey) & active
            lo = np.where(below, mid + 1, lo)
            hi = np.where(active & ~below, mid, hi)
        at = np.minimum(lo, n - 1)
        cand = np.flatnonzero((lo < n) & (key[at] == qkey) & valid)
        if cand.size == 0:
            return found
        pos = lo[cand]
        equal = (rest[pos] == rows[cand, 8:]).all(axis=1)
        found[cand[equal]] = pos[equal]
        for i, p in zip(cand[~equal], pos[~equal]):  # first-8-byte collisions: walk the tiny run
            p += 1
            while p < n and key[p] == qkey[i]:
                if (rest[p] == rows[i, 8:]).all():
                    found[i] = p
                    break
                p += 1
        return found

    def categories(self, positions: np.ndarray) -> np.ndarray | None:
        """Per-entry categories at ``positions`` (>= 0), or None when the set has none."""
        cats = self._load()[3]
        return None if cats is None else np.asarray(cats[positions])
