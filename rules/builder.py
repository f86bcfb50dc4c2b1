"""Compile a filled :class:`~triage.rules.spill.Spill` into an index folder.

Kept apart from the importer so the benchmark (and any future bulk loader) can
drive the very same code with arrays it made itself: spill rows, then
:func:`build`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from triage.rules.index import WIDTHS, write_index
from triage.rules.phashindex import write_phash_index
from triage.rules.spill import Spill

_MERGE_CHUNK = 1_000_000


def build(spill: Spill, out: Path, built_at: str) -> tuple[dict[str, int], bool]:
    """Write every index the spill has rows for, plus ``manifest.json``, durably.

    Returns the distinct entry count per algorithm and whether any entry
    carries its own category.
    """
    counts: dict[str, int] = {}
    with_categories = False
    for algorithm in WIDTHS:
        got = spill.arrays(algorithm)
        if got is not None:
            rows, cats = got
            has = bool((cats >= 0).any())
            with_categories |= has
            counts[algorithm] = write_index(out, algorithm, rows, cats if has else None)
            del rows, cats
            (spill.folder / f"{algorithm}.raw").unlink()
    got = spill.arrays("phash")
    if got is not None:
        rows, cats = got
        has = bool((cats >= 0).any())
        with_categories |= has
        blob, offsets = spill.names()
        hashes = rows.view(">u8").ravel().astype(np.uint64)
        counts["phash"] = write_phash_index(out, hashes, blob, offsets, cats if has else None)
    (out / "manifest.json").write_text(json.dumps({"version": 1, "counts": counts, "built_at": built_at}))
    fsync_tree(out)
    return counts, with_categories


def merge_previous(spill: Spill, base: Path) -> None:
    """Feed the current index of the set into the spill, so the new one is a union."""
    for algorithm in WIDTHS:
        if not (base / f"{algorithm}.key.npy").exists():
            continue
        key = np.load(base / f"{algorithm}.key.npy", mmap_mode="r")
        rest = np.load(base / f"{algorithm}.rest.npy", mmap_mode="r")
        cat_path = base / f"{algorithm}.cat.npy"
        cats = np.load(cat_path, mmap_mode="r") if cat_path.exists() else None
        for s in range(0, key.shape[0], _MERGE_CHUNK):
            head = np.asarray(key[s : s + _MERGE_CHUNK]).astype(">u8").view(np.uint8).reshape(-1, 8)
            rows = np.concatenate([head, rest[s : s + _MERGE_CHUNK]], axis=1)
            spill.add_rows(algorithm, rows, None if cats is None else cats[s : s + _MERGE_CHUNK])
    if (base / "phash.npy").exists():
        hashes = np.load(base / "phash.npy")
        cat_path = base / "phash.cat.npy"
        cats = np.load(cat_path) if cat_path.exists() else None
        spill.add_rows("phash", hashes.astype(">u8").view(np.uint8).reshape(-1, 8), cats)
        spill.add_name_blob((base / "phash.names.bin").read_bytes(), np.load(base / "phash.names.off.npy"))


def fsync_tree(folder: Path) -> None:
    """Make the new index durable before the catalog points at it."""
    for path in folder.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
