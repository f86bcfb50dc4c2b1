"""The query API workers call: which known-item sets a file's hashes (or picture) are in.

``KnownItems`` is a description plus a per-process cache, in the dfVFS way: it
pickles as its home path, and :meth:`KnownItems.open` hands every caller in a
process the same instance, whose indexes are memory-mapped on first use. So a
Dask task may carry one; the worker maps each index once however many tasks
run, and the pages are shared with every other worker on the host.

Each call ``stat``s the catalog (about a microsecond) and reloads the list of
sets when it changed, so sets imported or removed during a long run are seen at
the next batch. With no catalog at all every call returns misses at once.

Categories rank ``known-bad > notable > known-good``; a file in several sets
reports the strongest and every set name. :meth:`KnownItems.lookup` answers
with Python tuples; :meth:`KnownItems.lookup_codes` gives the same as numpy
arrays (about twice as fast: no object per file) for building Arrow columns. Perceptual reference ids are
``"<set>:<reference>"`` where the reference is the image's path inside the
imported folder, the CSV name column, or the VICS ``MediaID`` (set names
contain no ``:``, so split at the first one).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triage.rules.catalog import CATALOG, CATEGORIES, read_sets
from triage.rules.errors import InputError
from triage.rules.hexcodec import decode_hex
from triage.rules.home import state_dir
from triage.rules.index import WIDTHS, HashIndex
from triage.rules.phashindex import DEFAULT_MAX_DISTANCE, PhashIndex, phash_to_int

_RANK = {name: rank for rank, name in enumerate(CATEGORIES)}  # 0 is strongest
_ORDER = ("sha256", "sha1", "md5")
_MASK_BITS = 63  # sets a lookup can tell apart with one uint64 per file  # strongest algorithm first, for Hit.algorithm

Hashes = Sequence[str | None] | None
#: what lookup returns per file: (strongest category or None, sorted set names)
Answer = tuple[str | None, list[str]]


@dataclass(frozen=True)
class Hit:
    """One set a file is in: the set's category, the algorithm that hit, the entry's own category."""

    set: str
    category: str
    algorithm: str
    entry_category: int | None


@dataclass(frozen=True)
class _Set:
    name: str
    category: str
    directory: str
    hashes: dict[str, HashIndex]
    phash: PhashIndex | None


#: one probe result: the set, the algorithm, each query's position in that index (-1: miss), the index
_Found = tuple[_Set, str, np.ndarray, HashIndex]


class KnownItems:
    """Known-item lookups against every installed set; construct with :meth:`open`."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = state_dir(home)
        self.root = self.home / "hashsets"
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int, int] | None = None
        self._sets: tuple[_Set, ...] = ()

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None) -> KnownItems:
        """This process's instance for ``home`` (resolved like ``--home``); no I/O until used."""
        return _shared(str(state_dir(home)))

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (KnownItems.open, (str(self.home),))

    def __repr__(self) -> str:
        return f"KnownItems({str(self.home)!r})"

    def sets(self) -> dict[str, str]:
        """Installed set name -> category."""
        return {s.name: s.category for s in self._current()}

    def _current(self) -> tuple[_Set, ...]:
        try:
            st = os.stat(self.root / CATALOG)
            stamp: tuple[int, int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return self._sets
        with self._lock:
            if stamp != self._stamp:
                reuse = {s.directory: s for s in self._sets}
                loaded = []
                for record in read_sets(self.root) if stamp is not None else []:
                    old = reuse.get(record.directory)
                    if old is not None and old.category == record.category:
                        loaded.append(old)
                        continue
                    folder = self.root / record.directory
                    hashes = {a: HashIndex(folder, a) for a in WIDTHS if record.counts.get(a)}
                    phash = PhashIndex(folder) if record.counts.get("phash") else None
                    loaded.append(_Set(record.name, record.category, record.directory, hashes, phash))
                self._sets, self._stamp = tuple(loaded), stamp
        return self._sets

    def _probe(self, md5: Hashes, sha1: Hashes, sha256: Hashes) -> tuple[int, tuple[_Set, ...], list[_Found]]:
        """Search every index for the given batches, against one snapshot of the set list."""
        given = {"md5": md5, "sha1": sha1, "sha256": sha256}
        sizes = {len(v) for v in given.values() if v is not None}
        if len(sizes) > 1:
            raise ValueError(f"md5/sha1/sha256 batches differ in length: {sorted(sizes)}")
        n = sizes.pop() if sizes else 0
        sets = self._current() if n else ()
        found = []
        for algorithm in _ORDER:
            values = given[algorithm]
            users = [s for s in sets if algorithm in s.hashes]
            if values is None or not users:
                continue
            rows, valid = decode_hex(values, WIDTHS[algorithm])
            for s in users:
                found.append((s, algorithm, s.hashes[algorithm].find(rows, valid), s.hashes[algorithm]))
        return n, sets, found

    def lookup(self, md5: Hashes = None, sha1: Hashes = None, sha256: Hashes = None) -> list[Answer]:
        """Per file: the strongest category of the sets it is in (or None), and those sets' names, sorted.

        Pass any of the three hash batches (hex, any case, None for "not computed");
        given batches must have the same length. Malformed hex is simply a miss.
        """
        n, sets, found = self._probe(md5, sha1, sha256)
        if not found:
            return [(None, []) for _ in range(n)]
        if len(sets) > _MASK_BITS:  # more sets than mask bits: the plain way
            return self._lookup_slow(n, found)
        # one bit per set, then one answer per distinct combination of sets
        mask = _mask(n, sets, found)
        combos, which = np.unique(mask, return_inverse=True)
        answers = [_answer([s for k, s in enumerate(sets) if int(c) >> k & 1]) for c in combos]
        cats = [a[0] for a in answers]
        names = [a[1] for a in answers]
        miss = 0 if combos[0] == 0 else -1
        # each file gets its own list: callers may modify what they are given
        return [(None, []) if i == miss else (cats[i], [*names[i]]) for i in which.tolist()]

    def lookup_codes(
        self, md5: Hashes = None, sha1: Hashes = None, sha256: Hashes = None
    ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """:meth:`lookup` as arrays, for building Arrow columns without a Python object per file.

        Returns ``(category, sets, names)``: ``category[i]`` is an int8 index into
        :data:`~triage.rules.catalog.CATEGORIES` (0 known-bad, 1 notable, 2 known-good)
        or -1; bit ``k`` of the uint64 ``sets[i]`` means file i is in set ``names[k]``.
        At most 63 sets (a :class:`~triage.rules.errors.InputError` beyond).
        """
        n, sets, found = self._probe(md5, sha1, sha256)
        if len(sets) > _MASK_BITS:
            raise InputError(f"{len(sets)} hash sets installed; lookup_codes handles {_MASK_BITS}, use lookup")
        mask = _mask(n, sets, found)
        category = np.full(n, -1, dtype=np.int8)
        for rank in range(len(CATEGORIES) - 1, -1, -1):  # weakest first, so the strongest is written last
            bits = sum(1 << k for k, s in enumerate(sets) if _RANK[s.category] == rank)
            if bits:
                category[(mask & np.uint64(bits)) != 0] = rank
        return category, mask, tuple(s.name for s in sets)

    @staticmethod
    def _lookup_slow(n: int, found: list[_Found]) -> list[Answer]:
        out: list[Answer] = [(None, []) for _ in range(n)]
        hit: dict[int, dict[str, _Set]] = {}
        for s, _algorithm, positions, _index in found:
            for i in np.flatnonzero(positions >= 0).tolist():
                hit.setdefault(i, {})[s.name] = s
        for i, in_sets in hit.items():
            out[i] = _answer(list(in_sets.values()))
        return out

    def hits(self, md5: Hashes = None, sha1: Hashes = None, sha256: Hashes = None) -> list[list[Hit]]:
        """Per file, every set it is in with details (entry categories from VICS/CSV sources)."""
        n, _sets, found = self._probe(md5, sha1, sha256)
        out: list[dict[str, Hit]] = [{} for _ in range(n)]
        for s, algorithm, positions, index in found:
            where = np.flatnonzero(positions >= 0)
            cats = index.categories(positions[where]) if where.size else None
            for k, i in enumerate(where.tolist()):
                if s.name not in out[i]:
                    value = None if cats is None or cats[k] < 0 else int(cats[k])
                    out[i][s.name] = Hit(s.name, s.category, algorithm, value)
        return [sorted(d.values(), key=lambda h: h.set) for d in out]

    def match_phash(
        self, phashes: Sequence[str | None], max_distance: int | None = None
    ) -> list[tuple[str | None, int | None]]:
        """Per picture: ``("<set>:<reference>", distance)`` of the nearest reference within
        ``max_distance`` bits (default :data:`DEFAULT_MAX_DISTANCE`), else ``(None, None)``.

        Ties go to the set first by name, then the reference imported first.
        """
        limit = DEFAULT_MAX_DISTANCE if max_distance is None else int(max_distance)
        if not 0 <= limit <= 64:
            raise ValueError(f"max_distance must be 0-64, not {limit}")
        n = len(phashes)
        sets = [s for s in self._current() if s.phash is not None] if n else []
        if not sets:
            return [(None, None)] * n
        queries, valid = phash_to_int(phashes)
        rows = np.flatnonzero(valid)
        best = np.full(n, 99, dtype=np.int16)
        owner = np.full(n, -1, dtype=np.int64)
        where = np.full(n, -1, dtype=np.int64)
        for k, s in enumerate(sets):
            dist, pos = s.phash.nearest(queries[rows], limit)  # type: ignore[union-attr]
            better = (dist >= 0) & (dist < best[rows])
            best[rows[better]] = dist[better]
            owner[rows[better]] = k
            where[rows[better]] = pos[better]
        out: list[tuple[str | None, int | None]] = [(None, None)] * n
        for i in np.flatnonzero(owner >= 0).tolist():
            s = sets[int(owner[i])]
            out[i] = (f"{s.name}:{s.phash.name(int(where[i]))}", int(best[i]))  # type: ignore[union-attr]
        return out


def _mask(n: int, sets: tuple[_Set, ...], found: list[_Found]) -> np.ndarray:
    """Per file, bit k set when it is in ``sets[k]``."""
    order = {s.name: k for k, s in enumerate(sets)}
    mask = np.zeros(n, dtype=np.uint64)
    for s, _algorithm, positions, _index in found:
        mask[positions >= 0] |= np.uint64(1 << order[s.name])
    return mask


def _answer(hit: list[_Set]) -> Answer:
    """The strongest category among ``hit`` and their names, sorted."""
    if not hit:
        return None, []
    return min((s.category for s in hit), key=_RANK.__getitem__), sorted(s.name for s in hit)


@functools.lru_cache(maxsize=16)
def _shared(home: str) -> KnownItems:
    """The per-process cache behind :meth:`KnownItems.open` (the dfVFS resolver-context idea)."""
    return KnownItems(Path(home))
