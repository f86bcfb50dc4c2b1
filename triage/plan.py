"""Turning a walk table into content tasks: batches bounded by bytes and files.

Small files are packed into one task up to ``batch_bytes``; a file larger than
that gets a task of its own and a higher priority, so the longest tasks start
first and one huge file runs beside everything else instead of at the end. A
file larger than ``split_bytes`` becomes a chain of :class:`Segment` tasks of
that many bytes, each handing the hash state to the next (md5/sha1/sha256 are
sequential, so the chain is too, but every task stays bounded: a priority change,
a progress report or a lost worker costs one segment, not the whole file).
Items are ordered by inode for locality on disk.
"""

from __future__ import annotations

import pyarrow as pa

from triage.workers.refs import ContentBatch, ContentItem, ContentOptions, KnownRef, Segment, VolumeRef
from triage.workers.resumable import available as resumable_available
from triage.workers.vss import DIFF_AREA_SUFFIX, store_number
from triage.workers.walk import hashable


def plan_batches(
    vol: VolumeRef, table: pa.RecordBatch, batch_bytes: int, batch_files: int, options: ContentOptions,
    known: KnownRef | None = None, split_bytes: int | None = None,
) -> list[ContentBatch | Segment]:
    cols = table.select(["inode", "attr_type", "attr_id", "size", "name", "type", "status"]).to_pydict()
    snapshot = store_number(vol.index) is not None  # a shadow copy's own diff-area files are not read (merge drops them)
    items = [
        ContentItem(row=i, inode=cols["inode"][i], attr_type=cols["attr_type"][i], attr_id=cols["attr_id"][i],
                    size=cols["size"][i], name=cols["name"][i])
        for i in range(table.num_rows)
        if hashable(cols["type"][i], cols["status"][i])
        and not (snapshot and cols["name"][i].endswith(DIFF_AREA_SUFFIX))
    ]
    items.sort(key=lambda it: (it.inode, it.attr_type or 0, it.attr_id or 0, it.row))
    batches: list[ContentBatch | Segment] = []
    split = split_bytes if split_bytes and resumable_available() else None
    current: list[ContentItem] = []
    current_bytes = 0
    for it in items:
        if split is not None and it.size > split:
            batches.append(Segment(vol, it, 0, split, options, known))
            continue
        if it.size >= batch_bytes:
            batches.append(ContentBatch(vol, (it,), options, known))
            continue
        if current and (current_bytes + it.size > batch_bytes or len(current) >= batch_files):
            batches.append(ContentBatch(vol, tuple(current), options, known))
            current, current_bytes = [], 0
        current.append(it)
        current_bytes += it.size
    if current:
        batches.append(ContentBatch(vol, tuple(current), options, known))
    batches.sort(key=lambda b: -(b.item.size if isinstance(b, Segment) else b.nbytes))
    return batches
