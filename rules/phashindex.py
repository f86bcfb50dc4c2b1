"""Perceptual (64-bit phash) reference index: nearest reference within a Hamming distance.

Files in a set's folder::

    phash.npy            uint64 (n,)        reference hashes, in import order
    phash.names.bin      UTF-8              reference ids, concatenated
    phash.names.off.npy  int64 (n+1,)       where each id starts in phash.names.bin
    phash.cat.npy        int16 (n,)         per-entry category (only if the source had any)
    phash.mih.npy        uint64 (4, n)      the hashes sorted by each 16-bit quarter
    phash.mihidx.npy     uint32 (4, n)      their positions in phash.npy
    phash.mihoff.npy     int64 (4, 65537)   where each quarter value starts

Two exact search methods, chosen per call:

* brute force: XOR + ``np.bitwise_count`` against every reference, in blocks
  that keep the (queries x references) temporary near 4M cells;
* multi-index hashing (Norouzi et al.): split the 64 bits into four 16-bit
  quarters. If two hashes differ in at most ``d`` bits, some quarter differs in
  at most ``d // 4`` bits (pigeonhole), so probing every quarter value within
  that radius finds every candidate; candidates are then checked in full.
  With ``d = 10`` that is 4 x 137 probes of ~n/65536 references each.

Both return the same answer: the smallest distance, ties to the earliest reference.
Multi-index wins from about 10 000 references at small radii (see
``tests/benchmarks/bench_hashsets.py``); past ``d = 11`` its probe count grows
quickly and brute force is used.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from triage.rules.hexcodec import decode_hex

#: distance at or below which two 64-bit phashes are the same picture (match_phash's default):
#: resized and re-compressed copies land at 0-6 bits, unrelated pictures around 32
DEFAULT_MAX_DISTANCE = 10
#: below this many references brute force is as fast and needs no tables
MIH_MIN_REFS = 10_000
#: above this distance the quarter radius reaches 3 (697 probes per quarter) and brute force is as fast
MIH_MAX_DISTANCE = 11
_CELLS = 4_000_000
_CANDIDATES = 8_000_000
_QUERY_BLOCK = 4096


def write_phash_index(
    folder: Path, hashes: np.ndarray, names: bytes, offsets: np.ndarray, cats: np.ndarray | None
) -> int:
    """Save the reference hashes, their ids (``names[offsets[i]:offsets[i+1]]``) and the multi-index tables."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = hashes.shape[0]
    np.save(folder / "phash.npy", hashes)
    (folder / "phash.names.bin").write_bytes(names)
    np.save(folder / "phash.names.off.npy", np.asarray(offsets, dtype=np.int64))
    if cats is not None and (cats >= 0).any():
        np.save(folder / "phash.cat.npy", cats)
    mih = np.empty((4, n), dtype=np.uint64)
    idx = np.empty((4, n), dtype=np.uint32)
    off = np.empty((4, 65537), dtype=np.int64)
    for j in range(4):
        quarter = (hashes >> np.uint64(16 * j)) & np.uint64(0xFFFF)
        order = np.argsort(quarter, kind="stable")
        mih[j] = hashes[order]
        idx[j] = order
        off[j] = np.searchsorted(quarter[order], np.arange(65537, dtype=np.uint64), side="left")
    np.save(folder / "phash.mih.npy", mih)
    np.save(folder / "phash.mihidx.npy", idx)
    np.save(folder / "phash.mihoff.npy", off)
    return n


def phash_to_int(values: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """``(uint64 hashes, valid mask)`` for a batch of 16-hex-digit phashes (strict hex)."""
    rows, valid = decode_hex(values, 8)
    return rows.view(">u8").ravel().astype(np.uint64), valid


@functools.cache
def _masks(radius: int) -> np.ndarray:
    """Every 16-bit value with at most ``radius`` bits set (the quarter probes)."""
    values = np.arange(65536, dtype=np.uint16)
    return values[np.bitwise_count(values) <= radius].astype(np.intp)


class PhashIndex:
    """The perceptual references of one set, mapped read-only on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._maps: dict[str, np.ndarray] | None = None
        self._names: bytes | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._maps is None:
            maps = {}
            for part in ("phash", "phash.names.off", "phash.mih", "phash.mihidx", "phash.mihoff"):
                maps[part] = np.load(self.folder / f"{part}.npy", mmap_mode="r")
            cat = self.folder / "phash.cat.npy"
            if cat.exists():
                maps["cat"] = np.load(cat, mmap_mode="r")
            self._maps = maps
        return self._maps

    def __len__(self) -> int:
        return int(self._load()["phash"].shape[0])

    def name(self, position: int) -> str:
        """The reference id stored for the reference at ``position``."""
        if self._names is None:
            self._names = (self.folder / "phash.names.bin").read_bytes()
        off = self._load()["phash.names.off"]
        return self._names[int(off[position]) : int(off[position + 1])].decode("utf-8", "replace")

    def category(self, position: int) -> int | None:
        cats = self._load().get("cat")
        value = -1 if cats is None else int(cats[position])
        return None if value < 0 else value

    def nearest(
        self, queries: np.ndarray, max_distance: int, method: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(distance, position)`` of the nearest reference within ``max_distance``; -1 where none."""
        refs = self._load()["phash"]
        if method is None:
            small = refs.shape[0] < MIH_MIN_REFS or max_distance > MIH_MAX_DISTANCE
            method = "brute" if small else "mih"
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        dist = np.empty(queries.shape[0], dtype=np.int16)
        pos = np.empty(queries.shape[0], dtype=np.int64)
        for s in range(0, queries.shape[0], _QUERY_BLOCK):
            block = queries[s : s + _QUERY_BLOCK]
            if method == "brute":
                dist[s : s + _QUERY_BLOCK], pos[s : s + _QUERY_BLOCK] = self._brute(block, refs)
            else:
                dist[s : s + _QUERY_BLOCK], pos[s : s + _QUERY_BLOCK] = self._mih(block, max_distance)
        miss = dist > max_distance
        dist[miss] = -1
        pos[miss] = -1
        return dist, pos

    @staticmethod
    def _brute(queries: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m, n = queries.shape[0], refs.shape[0]
        best = np.full(m, 255, dtype=np.int16)
        where = np.full(m, -1, dtype=np.int64)
        qblock = min(max(m, 1), 1024)
        rblock = max(1, _CELLS // qblock)
        for qs in range(0, m, qblock):
            q = queries[qs : qs + qblock, None]
            b, w = best[qs : qs + qblock], where[qs : qs + qblock]
            for rs in range(0, n, rblock):
                dist = np.bitwise_count(q ^ refs[None, rs : rs + rblock])
                j = dist.argmin(axis=1)
                d = dist[np.arange(dist.shape[0]), j].astype(np.int16)
                better = d < b  # strict: an earlier reference keeps a tie
                b[better] = d[better]
                w[better] = rs + j[better]
        return best, where

    def _mih(self, queries: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
        maps = self._load()
        masks = _masks(max_distance // 4)
        m = queries.shape[0]
        best = np.full(m, 255, dtype=np.int16)
        where = np.full(m, np.iinfo(np.int64).max, dtype=np.int64)
        for j in range(4):
            mih, idx, off = maps["phash.mih"][j], maps["phash.mihidx"][j], maps["phash.mihoff"][j]
            quarter = ((queries >> np.uint64(16 * j)) & np.uint64(0xFFFF)).astype(np.intp)
            probes = quarter[:, None] ^ masks[None, :]
            starts = off[probes]
            lengths = off[probes + 1] - starts
            per_query = lengths.sum(axis=1)
            qs = 0
            while qs < m:  # query blocks bounded by candidate count, at least one query each
                cum = np.cumsum(per_query[qs:])
                qe = qs + max(1, int(np.searchsorted(cum, _CANDIDATES, side="right")))
                self._check_block(queries, qs, qe, starts, lengths, mih, idx, best, where, max_distance)
                qs = qe
        where[best == 255] = -1
        return best, where

    @staticmethod
    def _check_block(
        queries: np.ndarray, qs: int, qe: int, starts: np.ndarray, lengths: np.ndarray,
        mih: np.ndarray, idx: np.ndarray, best: np.ndarray, where: np.ndarray, max_distance: int,
    ) -> None:
        """Check the candidates of queries ``qs:qe`` in one quarter table; update best/where."""
        lens = lengths[qs:qe].ravel()
        total = int(lens.sum())
        if total == 0:
            return
        # candidate k is mih[pos[k]]; runs of candidates belong to one probe, probes to one query
        ends = np.cumsum(lens)
        pos = np.arange(total, dtype=np.int64) - np.repeat(ends - lens - starts[qs:qe].ravel(), lens)
        probe_query = np.repeat(queries[qs:qe], lengths.shape[1])
        dist = np.bitwise_count(mih[pos] ^ np.repeat(probe_query, lens))
        near = np.flatnonzero(dist <= max_distance)
        if near.size == 0:
            return
        query_ends = ends[lengths.shape[1] - 1 :: lengths.shape[1]]
        owner = qs + np.searchsorted(query_ends, near, side="right")
        dist, ref = dist[near].astype(np.int16), idx[pos[near]].astype(np.int64)
        order = np.lexsort((ref, dist, owner))
        owner, dist, ref = owner[order], dist[order], ref[order]
        lead = np.ones(owner.shape[0], dtype=bool)
        lead[1:] = owner[1:] != owner[:-1]
        owner, dist, ref = owner[lead], dist[lead], ref[lead]
        better = (dist < best[owner]) | ((dist == best[owner]) & (ref < where[owner]))
        best[owner[better]] = dist[better]
        where[owner[better]] = ref[better]
