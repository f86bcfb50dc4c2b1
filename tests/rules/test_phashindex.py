"""Perceptual index: brute force and multi-index hashing agree with a plain Python oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triage.rules.phashindex import PhashIndex, phash_to_int, write_phash_index


def build(folder: Path, hashes: np.ndarray) -> PhashIndex:
    names = [f"ref{i}".encode() for i in range(len(hashes))]
    offsets = np.concatenate([[0], np.cumsum([len(n) for n in names])])
    write_phash_index(folder, hashes, b"".join(names), offsets, None)
    return PhashIndex(folder)


def oracle(queries: np.ndarray, refs: np.ndarray, limit: int) -> tuple[list[int], list[int]]:
    dists, where = [], []
    refs = refs.tolist()
    for q in queries.tolist():
        d = [(q ^ r).bit_count() for r in refs]
        best = min(d) if d else 99
        dists.append(best if best <= limit else -1)
        where.append(d.index(best) if best <= limit else -1)
    return dists, where


@pytest.mark.parametrize("limit", [0, 3, 10, 11, 20])
def test_methods_agree_with_oracle(tmp_path: Path, limit: int) -> None:
    rng = np.random.default_rng(limit)
    refs = rng.integers(0, 2**64, 3000, dtype=np.uint64)
    refs[100:110] = refs[5]  # duplicate references: the earliest must win
    refs[200:400] &= np.uint64(0xFFFF0000FFFF0000)  # skewed quarters, as flat pictures give
    index = build(tmp_path, refs)
    flips = np.zeros(400, dtype=np.uint64)
    for i in range(400):
        for bit in rng.choice(64, int(rng.integers(0, 16)), replace=False):
            flips[i] |= np.uint64(1) << np.uint64(bit)
    queries = np.concatenate([refs[rng.integers(0, 3000, 400)] ^ flips, rng.integers(0, 2**64, 100, dtype=np.uint64)])
    want = oracle(queries, refs, limit)
    for method in ("brute", "mih", None):
        dist, pos = index.nearest(queries, limit, method)
        assert dist.tolist() == want[0], method
        assert pos.tolist() == want[1], method
    assert index.name(int(np.flatnonzero(refs == refs[5])[0])) == "ref5"


def test_phash_hex_is_strict() -> None:
    values, valid = phash_to_int(["8f373714acfcf4d0", "+f373714acfcf4d0", "0x73714acfcf4d00", None, "8F373714ACFCF4D0", "8f37"])
    assert valid.tolist() == [True, False, False, False, True, False]
    assert int(values[0]) == int(values[4]) == 0x8F373714ACFCF4D0
