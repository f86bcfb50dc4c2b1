"""Checking a task's digested rows against the known-item sets, a batch at a time.

The sets are memory-mapped indexes shared by every worker through the page cache;
one vectorised lookup per task. A task checks against the sets *pinned* in its
:class:`KnownRef` when the run started (their index folders never change once
written), not whatever the catalog holds now, so a set imported mid-run cannot
mix old and new answers in one table. ``known`` comes from exact hashes only; a
perceptual near-duplicate is reported in ``phash_match``/``phash_distance``.
Whether a row is a *known-bad hit* (either way) is decided in one place, on the
control plane: :mod:`triage.knownbad`.
"""

from __future__ import annotations

import functools
from pathlib import Path

from triage.rules.catalog import read_sets
from triage.rules.errors import InputError
from triage.rules.index import WIDTHS, HashIndex
from triage.rules.matcher import KnownItems, _Set
from triage.rules.phashindex import PhashIndex
from triage.workers.pathmap import map_path
from triage.workers.refs import KnownRef, PinnedSet

KNOWN_COLUMNS = ("known", "hashset_hits", "phash_match", "phash_distance")


class PinnedKnownItems(KnownItems):
    """:class:`KnownItems` over a fixed list of index folders instead of the live catalog."""

    def __init__(self, ref: KnownRef) -> None:
        super().__init__(map_path(ref.home))  # the sets' folder as this worker sees it (cluster.path-map)
        loaded = []
        for s in ref.sets:
            folder = self.root / s.directory
            if not folder.is_dir():
                raise InputError(f"{folder}: index of hash set {s.name!r} replaced or removed during the run; "
                                 "run again to use the sets installed now")
            hashes = {a: HashIndex(folder, a) for a in WIDTHS if a in s.algorithms}
            phash = PhashIndex(folder) if "phash" in s.algorithms else None
            loaded.append(_Set(s.name, s.category, s.directory, hashes, phash))
        self._pinned = tuple(loaded)

    def _current(self) -> tuple[_Set, ...]:
        return self._pinned


@functools.lru_cache(maxsize=8)
def pinned(ref: KnownRef) -> PinnedKnownItems:
    """This process's lookups for one snapshot (the indexes are mapped once)."""
    return PinnedKnownItems(ref)


def apply_known(rows: dict[str, list], known: KnownRef | None) -> None:
    """Fill the four known-item columns of ``rows`` (column lists of equal length) in place."""
    n = len(rows["sha256"])
    hashed = [h is not None for h in rows["sha256"]]
    rows["known"] = [None] * n
    rows["hashset_hits"] = [[] if h else None for h in hashed]
    rows["phash_match"] = [None] * n
    rows["phash_distance"] = [None] * n
    if known is None or not known.sets or n == 0:
        return
    items = pinned(known)
    for i, (category, names) in enumerate(items.lookup(rows["md5"], rows["sha1"], rows["sha256"])):
        if hashed[i]:
            rows["known"][i] = category
            rows["hashset_hits"][i] = names
    if any(rows["phash"]):
        for i, (ref, dist) in enumerate(items.match_phash(rows["phash"], known.max_distance)):
            rows["phash_match"][i], rows["phash_distance"][i] = ref, dist


def snapshot(home: str | Path, max_distance: int) -> KnownRef | None:
    """The sets installed in ``home`` now, pinned for one run; None when there are none."""
    sets = tuple(PinnedSet(r.name, r.category, r.directory, tuple(sorted(a for a, n in r.counts.items() if n)))
                 for r in read_sets(Path(home) / "hashsets"))
    return KnownRef(str(home), max_distance, sets) if sets else None
