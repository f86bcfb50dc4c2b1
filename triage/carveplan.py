"""Where to carve: unallocated space of each filesystem, space outside every partition,
partitions with no recognised filesystem (or the whole image with ``--carve-all``),
split into chunks of bounded size, one task each.

"Unallocated" is the complement, within the partition, of the byte ranges holding
the data of allocated entries as TSK lists them (every run of every attribute,
the root directory, FAT tables, NTFS system files): what fiwalk's byte runs do not
cover. Filesystem structures that are not files (ext inode tables, bitmaps) are
therefore scanned too; carvers validate structure, so they yield nothing there.
"""

from __future__ import annotations

from triage.workers.carving import CarveChunk
from triage.workers.refs import ContentOptions, ImageRef, KnownRef
from triage.workers.volumes import ENCRYPTED_LAYERS, Partition
from triage.workers.walk import WalkResult, merge_ranges


def subtract(start: int, end: int, taken: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` not covered by the sorted, merged ``taken`` ranges, as (start, length)."""
    out, pos = [], start
    for s, n in taken:
        e = s + n
        if e <= pos:
            continue
        if s >= end:
            break
        if s > pos:
            out.append((pos, s - pos))
        pos = max(pos, e)
    if pos < end:
        out.append((pos, end - pos))
    return out


def partition_extents(p: Partition, walk: WalkResult | None, size: int) -> list[tuple[int, int]]:
    """The carve extents of one volume-table entry."""
    if p.flags == "meta":
        return []
    ranges = p.image_ranges(size)  # a logical volume's segments; else [start, start + length)
    if p.flags == "alloc" and walk is not None and walk.filesystem is not None:
        if p.layer in ENCRYPTED_LAYERS:
            return []  # unlocked: its free space is plaintext with no image offset, the image holds ciphertext
        return [piece for s, n in ranges for piece in subtract(s, s + n, walk.allocated)]
    return ranges  # outside every partition, or no filesystem recognised


def chunks(extents: list[tuple[int, int]], image: ImageRef, chunk_bytes: int, overlap: int,
           options: ContentOptions, extract_dir: str | None, known: KnownRef | None = None) -> list[CarveChunk]:
    """Split extents into chunks; each looks back up to ``overlap`` bytes within its extent."""
    out = []
    for start, length in merge_ranges(extents):
        pos, end = start, start + length
        while pos < end:
            stop = min(pos + chunk_bytes, end)
            out.append(CarveChunk(image, pos, stop, min(overlap, pos - start), options, extract_dir, known))
            pos = stop
    return out


class Owner:
    """Which volume-table entry a carved object's offset lies in: allocated partitions first."""

    def __init__(self, parts: list[Partition]) -> None:
        ranked = sorted(parts, key=lambda p: ({"alloc": 0, "unalloc": 1}.get(p.flags, 2), p.start))
        self._parts = ranked

    def __call__(self, offset: int) -> int:
        for p in self._parts:
            spans = p.extents if p.extents is not None else ((p.start, p.length),)
            if any(s <= offset < s + n for s, n in spans):
                return p.index
        return 0

