"""What a "known-bad hit" is, decided in one place.

A row is a known-bad hit when its exact content is in a known-bad set (``known ==
"known-bad"``, from md5/sha1/sha256) **or** its picture is a near-duplicate of a
reference picture in a known-bad set (``phash_match`` names such a set). Which sets
are known-bad is read from the run's pinned snapshot (:class:`KnownRef`), never
from the catalog as it is now.

Hits are counted on rows that are final: a walked file's row is final the moment
its content task returns; a carved object's row only once carving is merged (it
may be merged away as part of another object or as a repeat of an allocated file).
The printed ``KNOWN-BAD`` lines, ``summary.json``, the queue's ``known_bad_hits``
(so ``triage status``), escalation and reports all count with this module.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from triage.workers.refs import KnownRef

_COLUMNS = ("row", "path", "partition", "offset", "known", "hashset_hits", "sha256", "phash_match", "phash_distance")


class KnownBad:
    """The known-bad test of one run, over its snapshot of set categories."""

    def __init__(self, known: KnownRef | None) -> None:
        self.bad_sets = frozenset(n for n, c in (known.categories() if known else {}).items() if c == "known-bad")

    def is_hit(self, known: str | None, phash_match: str | None) -> bool:
        if known == "known-bad":
            return True
        return phash_match is not None and phash_match.split(":", 1)[0] in self.bad_sets

    def hits(self, table: pa.Table) -> list[dict]:
        """The rows of ``table`` that are hits, with the columns a report of them needs."""
        if table.num_rows == 0 or "known" not in table.schema.names:
            return []
        # candidates first (vectorised): most rows are neither known-bad nor near any reference
        maybe = pc.or_(pc.fill_null(pc.equal(table.column("known"), "known-bad"), False),
                       pc.is_valid(table.column("phash_match")))
        if not pc.any(maybe).as_py():
            return []
        cols = table.filter(maybe).select([c for c in _COLUMNS if c in table.schema.names]).to_pylist()
        return [r for r in cols if self.is_hit(r["known"], r["phash_match"])]

    def count(self, table: pa.Table) -> int:
        return len(self.hits(table))


def event(image: str, partition: int, path: str, row: dict) -> dict:
    """The ``known-bad`` notification of one hit (what ``triage run`` prints a line for)."""
    return {"image": image, "partition": partition, "path": path, "sha256": row["sha256"],
            "sets": row["hashset_hits"] or [], "exact": row["known"] == "known-bad",
            "phash_match": row["phash_match"], "phash_distance": row["phash_distance"]}
