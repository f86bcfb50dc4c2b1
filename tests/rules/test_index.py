"""The compiled exact-hash index against numpy's own unique/sort as the oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triage.rules.index import HashIndex, directory, sort_unique, write_index


def rows_of(key: np.ndarray, rest: np.ndarray) -> np.ndarray:
    return np.concatenate([key.astype(">u8").view(np.uint8).reshape(-1, 8), rest], axis=1)


@pytest.mark.parametrize("width", [16, 20, 32])
def test_sort_unique_matches_numpy_unique(width: int) -> None:
    rng = np.random.default_rng(width)
    rows = rng.integers(0, 256, (3000, width), dtype=np.uint8)
    rows[:1000, :8] = rows[0, :8]  # a long run sharing the first 8 bytes
    rows[1000:1100, :8] = rows[1, :8]
    rows[2000:2500] = rows[1500:2000]  # exact duplicates
    cats = np.arange(3000, dtype=np.int16)
    key, rest, got_cats = sort_unique(rows.copy(), cats.copy())
    assert np.array_equal(rows_of(key, rest), np.unique(rows, axis=0))
    first = {}
    for i, r in enumerate(rows):
        first.setdefault(r.tobytes(), i)
    assert got_cats is not None
    assert [int(c) for c in got_cats] == [first[r.tobytes()] for r in rows_of(key, rest)]


def test_directory_bounds_every_bucket() -> None:
    rng = np.random.default_rng(1)
    key = np.sort(rng.integers(0, 2**63, 10_000, dtype=np.uint64) * np.uint64(2))
    d = directory(key)
    bits = (len(d) - 1).bit_length() - 1
    assert d[0] == 0 and d[-1] == len(key) and np.all(np.diff(d) >= 0)
    bucket = (key >> np.uint64(64 - bits)).astype(np.int64)
    positions = np.arange(len(key))
    assert np.all((d[bucket] <= positions) & (positions < d[bucket + 1]))


@pytest.mark.parametrize("count", [0, 1, 7, 5000])
def test_find_exact_hits_and_misses(tmp_path: Path, count: int) -> None:
    rng = np.random.default_rng(count)
    rows = rng.integers(0, 256, (count, 20), dtype=np.uint8)
    if count > 100:
        rows[:50, :8] = rows[0, :8]
    write_index(tmp_path, "sha1", rows, None)
    index = HashIndex(tmp_path, "sha1")
    assert len(index) == len(np.unique(rows, axis=0)) if count else len(index) == 0
    misses = rng.integers(0, 256, (300, 20), dtype=np.uint8)
    if count:
        misses[:100, :8] = rows[0, :8]  # same first 8 bytes, different rest
    queries = np.concatenate([rows, misses])
    valid = np.ones(len(queries), dtype=bool)
    valid[-1] = False
    found = index.find(queries, valid)
    assert (found[:count] >= 0).all() and (found[count:] == -1).all()
    stored = rows_of(np.load(tmp_path / "sha1.key.npy"), np.load(tmp_path / "sha1.rest.npy"))
    assert np.array_equal(stored[found[:count]], rows)
    if count:
        v = valid.copy()
        v[0] = False
        assert index.find(queries[:1], v[:1])[0] == -1  # an invalid row never hits


def test_categories_only_when_present(tmp_path: Path) -> None:
    rows = np.arange(32, dtype=np.uint8).reshape(2, 16)
    write_index(tmp_path, "md5", rows, np.array([-1, -1], dtype=np.int16))
    assert not (tmp_path / "md5.cat.npy").exists()
    index = HashIndex(tmp_path, "md5")
    assert index.categories(np.array([0])) is None
    write_index(tmp_path / ".", "md5", rows, np.array([-1, 3], dtype=np.int16))
    index = HashIndex(tmp_path, "md5")
    found = index.find(rows, np.ones(2, bool))
    assert index.categories(found).tolist() == [-1, 3]
