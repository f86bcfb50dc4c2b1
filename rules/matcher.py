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
reports the strongest and every set name. Perceptual reference ids are
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
from triage.rules.hexcodec import decode_hex
from triage.rules.home import state_dir
from triage.rules.index import WIDTHS, HashIndex
from triage.rules.phashindex import DEFAULT_MAX_DISTANCE, PhashIndex, phash_to_int

_RANK = {name: rank for rank, name in enumerate(CATEGORIES)}  # 0 is strongest
_ORDER = ("sha256", "sha1", "md5")  # strongest algorithm first, for Hit.algorithm

Hashes = Sequence[str | None] | None


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

    def _probe(self, md5: Hashes, sha1: Hashes, sha256: Hashes) -> tuple[int, list[tuple[_Set, str, np.ndarray, HashIndex]]]:
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
        return n, found

    def lookup(self, md5: Hashes = None, sha1: Hashes = None, sha256: Hashes = None) -> list[tuple[str | None, list[str]]]:
        """Per file: the strongest category of the sets it is in (or None), and those sets' names, sorted.

        Pass any of the three hash batches (hex, any case, None for "not computed");
        given batches must have the same length. Malformed hex is simply a miss.
        """
        n, found = self._probe(md5, sha1, sha256)
        if not found:
            return [(None, []) for _ in range(n)]
        order = {s.name: k for k, s in enumerate(self._sets)}
        if len(order) > 63:  # more sets than mask bits: the plain way
            return self._lookup_slow(n, found)
        # one bit per set, then one answer per distinct combination of sets
        mask = np.zeros(n, dtype=np.uint64)
        for s, _algorithm, positions, _index in found:
            mask[positions >= 0] |= np.uint64(1 << order[s.name])
        combos, which = np.unique(mask, return_inverse=True)
        answers = [self._answer([s.name for k, s in enumerate(self._sets) if int(c) >> k & 1]) for c in combos]
        cats = [a[0] for a in answers]
        names = [a[1] for a in answers]
        miss = 0 if combos[0] == 0 else -1
        # each file gets its own list: callers may modify what they are given
        return [(None, []) if i == miss else (cats[i], [*names[i]]) for i in which.tolist()]

    def _answer(self, names: list[str]) -> tuple[str | None, list[str]]:
        if not names:
            return None, []
        categories = {s.name: s.category for s in self._sets}
        ordered = sorted(names)
        return min((categories[x] for x in ordered), key=_RANK.__getitem__), ordered

    def _lookup_slow(self, n: int, found: list[tuple[_Set, str, np.ndarray, HashIndex]]) -> list[tuple[str | None, list[str]]]:
        out: list[tuple[str | None, list[str]]] = [(None, []) for _ in range(n)]
        names: dict[int, set[str]] = {}
        for s, _algorithm, positions, _index in found:
            for i in np.flatnonzero(positions >= 0).tolist():
                names.setdefault(i, set()).add(s.name)
        for i, hit in names.items():
            out[i] = self._answer(list(hit))
        return out

    def hits(self, md5: Hashes = None, sha1: Hashes = None, sha256: Hashes = None) -> list[list[Hit]]:
        """Per file, every set it is in with details (entry categories from VICS/CSV sources)."""
        n, found = self._probe(md5, sha1, sha256)
        out: list[dict[str, Hit]] = [{} for _ in range(n)]
        for s, algorithm, positions, index in found:
            where = np.flatnonzero(positions >= 0)
            cats = index.categories(positions[where]) if where.size else None
            for k, i in enumerate(where.tolist()):
                if s.name not in out[i]:
                    value = None if cats is None or cats[k] < 0 else int(cats[k])
                    out[i][s.name] = Hit(s.name, s.category, algorithm, value)
        return [sorted(d.values(), key=lambda h: h.set) for d in out]

    def match_phash(self, phashes: Sequence[str | None], max_distance: int | None = None) -> list[tuple[str | None, int | None]]:
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


@functools.lru_cache(maxsize=16)
def _shared(home: str) -> KnownItems:
    """The per-process cache behind :meth:`KnownItems.open` (the dfVFS resolver-context idea)."""
    return KnownItems(Path(home))
