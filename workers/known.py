"""Checking a task's digested rows against the known-item sets, a batch at a time.

The sets are memory-mapped indexes shared by every worker through the page cache
(:class:`triage.rules.matcher.KnownItems`); one vectorised lookup per task.
``known`` comes from exact hashes only; a perceptual near-duplicate is reported
in ``phash_match``/``phash_distance`` and does not by itself make a file "known".
"""

from __future__ import annotations

from triage.workers.pathmap import map_path
from triage.workers.refs import KnownRef

KNOWN_COLUMNS = ("known", "hashset_hits", "phash_match", "phash_distance")


def apply_known(rows: dict[str, list], known: KnownRef | None) -> None:
    """Fill the four known-item columns of ``rows`` (column lists of equal length) in place."""
    n = len(rows["sha256"])
    hashed = [h is not None for h in rows["sha256"]]
    rows["known"] = [None] * n
    rows["hashset_hits"] = [[] if h else None for h in hashed]
    rows["phash_match"] = [None] * n
    rows["phash_distance"] = [None] * n
    if known is None or n == 0:
        return
    from triage.rules.matcher import KnownItems

    items = KnownItems.open(map_path(known.home))  # the sets' folder as this worker sees it
    for i, (category, names) in enumerate(items.lookup(rows["md5"], rows["sha1"], rows["sha256"])):
        if hashed[i]:
            rows["known"][i] = category
            rows["hashset_hits"][i] = names
    if any(rows["phash"]):
        for i, (ref, dist) in enumerate(items.match_phash(rows["phash"], known.max_distance)):
            rows["phash_match"][i], rows["phash_distance"][i] = ref, dist
