"""Merging task results into the final tables, and counting them for the summary."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from triage.workers.schema import FILES_SCHEMA, VOLUMES_SCHEMA
from triage.workers.volumes import Partition
from triage.workers.vss import DIFF_AREA_SUFFIX, parent_of, store_number
from triage.workers.vss import source as snapshot_source
from triage.workers.walk import WalkResult

CONTENT_COLUMNS = ("md5", "sha1", "sha256", "mime", "magic", "ext_mismatch", "phash", "entropy",
                   "known", "hashset_hits", "phash_match", "phash_distance")
SORT_KEYS = [("partition", "ascending"), ("path", "ascending"), ("inode", "ascending"),
             ("attr_type", "ascending"), ("attr_id", "ascending")]


def merge_partition(walk: WalkResult, contents: list[pa.Table], task_errors: dict[int, str]) -> pa.Table:
    """The walk's rows with the content columns filled in from the content tasks' rows."""
    n = walk.table.num_rows
    cols: dict[str, list] = {k: [None] * n for k in CONTENT_COLUMNS}
    status = walk.table.column("status").to_pylist()
    types = walk.table.column("type").to_pylist()
    for i, t in enumerate(types):
        if status[i] == "ok" and t.endswith("/-") and t[0] in "r-":
            status[i] = "no content: deleted name with no metadata left"
    for table in contents:
        d = table.to_pydict()
        for j, row in enumerate(d["row"]):
            for k in cols:
                cols[k][row] = d[k][j]
            status[row] = d["status"][j] if status[row] == "ok" else f"{status[row]}; {d['status'][j]}"
    for row, why in task_errors.items():
        status[row] = f"unreadable: {why}"
    arrays = []
    for f in FILES_SCHEMA:
        if f.name in cols:
            arrays.append(pa.array(cols[f.name], type=f.type))
        elif f.name == "status":
            arrays.append(pa.array(status, type=f.type))
        elif f.name not in walk.table.schema.names:
            arrays.append(pa.nulls(n, type=f.type))
        else:
            arrays.append(walk.table.column(f.name))
    return pa.Table.from_arrays(arrays, schema=FILES_SCHEMA)


def dedupe_carved(carved: pa.Table, file_tables: list[pa.Table], owner) -> pa.Table:
    """Carved rows with their partition set, none inside another carved object, and none that
    merely repeats an allocated file's content at the same place (possible when carving all of
    the image). The answer is then the same whatever the chunking."""
    seen_files = set()
    for t in file_tables:
        alloc = t.filter(pc.equal(t.column("source"), "allocated")).select(["offset", "sha256"]).to_pylist()
        seen_files.update((r["offset"], r["sha256"]) for r in alloc if r["offset"] is not None)
    carved = carved.sort_by([("offset", "ascending"), ("length", "descending")])
    keep, parts, cover_end = [], [], -1
    offsets, lengths = carved.column("offset").to_pylist(), carved.column("length").to_pylist()
    for i, (off, n, sha) in enumerate(zip(offsets, lengths, carved.column("sha256").to_pylist())):
        if off + n <= cover_end:
            # inside an object already kept (the same one from an overlapping chunk, or a member
            # of a container that crossed a chunk or extent boundary): part of that object
            continue
        cover_end = max(cover_end, off + n)
        if (off, sha) in seen_files:
            continue  # an allocated file found again; what it contains is its content too
        keep.append(i)
        parts.append(owner(off))
    carved = carved.take(pa.array(keep, type=pa.int64()))
    return carved.set_column(0, FILES_SCHEMA.field("partition"), pa.array(parts, type=pa.int32()))


def files_table(parts: list[pa.Table]) -> pa.Table:
    files = pa.concat_tables(parts) if parts else FILES_SCHEMA.empty_table()
    return fold_snapshots(files).sort_by(SORT_KEYS).combine_chunks()


def _same_file(volume: int, r: dict) -> tuple:
    """What makes a snapshot's row the live volume's file again: the same inode, attribute, size and
    hashes; for a row with no content hashed (a directory, a name with no metadata), also the path; for
    TSK's virtual entries (``$OrphanFiles``, numbered past the last MFT entry) the path instead of the inode."""
    virtual = r["type"].endswith("/V")
    return (volume, None if virtual else r["inode"], r["attr_type"], r["attr_id"], r["size"], r["md5"],
            r["sha256"], r["path"] if r["sha256"] is None else None)


def fold_snapshots(files: pa.Table) -> pa.Table:
    """Volume Shadow Copy rows (triage.workers.vss) marked ``source = vss:N``; those that repeat a file of
    the live volume they are a snapshot of are dropped, with the archive members listed from them, so
    what remains is what was deleted or changed since the snapshot. VSS's own files (the catalog, the stores'
    diff areas) are left out of a snapshot: what it shows of them is not data (libvshadow zero-fills them)."""
    parts = files.column("partition").to_pylist()
    if all(store_number(p) is None for p in parts):
        return files
    rows = files.select(["partition", "path", "inode", "attr_type", "attr_id", "type", "size", "md5", "sha256",
                         "source", "container"]).to_pylist()
    live = {_same_file(r["partition"], r) for r in rows
            if store_number(r["partition"]) is None and r["source"] not in ("carved", "archive member")}
    drop: set[int] = set()
    dropped: set[tuple[int, str]] = set()  # (snapshot, path) of dropped rows: their archive members go too
    for i, r in enumerate(rows):
        p = r["partition"]
        if store_number(p) is None or r["source"] == "archive member":
            continue
        if _same_file(parent_of(p), r) in live or r["path"].endswith(DIFF_AREA_SUFFIX):
            drop.add(i)
            dropped.add((p, r["path"]))
    members = sorted((r["path"].count("/"), i) for i, r in enumerate(rows)
                     if store_number(r["partition"]) is not None and r["source"] == "archive member")
    for _depth, i in members:  # outermost first: a member of a dropped member goes too
        if (rows[i]["partition"], rows[i]["container"]) in dropped:
            drop.add(i)
            dropped.add((rows[i]["partition"], rows[i]["path"]))
    keep = [i for i in range(len(rows)) if i not in drop]
    sources = [r["source"] if store_number(r["partition"]) is None or r["source"] == "archive member"
               else snapshot_source(r["partition"]) for r in (rows[i] for i in keep)]
    out = files.take(pa.array(keep, type=pa.int64()))
    i = out.schema.get_field_index("source")
    return out.set_column(i, FILES_SCHEMA.field("source"), pa.array(sources, type=pa.string()))


def volumes_table(parts: list[Partition], walks: dict[int, WalkResult], files: pa.Table) -> pa.Table:
    per_partition: dict[int, int] = {}
    for p in files.column("partition").to_pylist():
        per_partition[p] = per_partition.get(p, 0) + 1
    rows = []
    for p in parts:
        w = walks.get(p.index)
        if p.flags == "alloc":
            status = w.status if w is not None else "not walked"
        else:
            status = "not walked (unallocated space)" if p.flags == "unalloc" else "not walked (volume system metadata)"
        rows.append({
            "index": p.index, "slot": p.slot, "start": p.start, "length": p.length, "flags": p.flags,
            "description": p.description, "volume_system": p.volume_system, "parent": p.parent, "layer": p.layer,
            "extents": None if p.extents is None else [{"start": s, "length": n} for s, n in p.extents],
            "filesystem": w.filesystem if w is not None else None,
            "files": per_partition.get(p.index, 0), "status": status,
        })
    return pa.Table.from_pylist(rows, schema=VOLUMES_SCHEMA)


def counts(table: pa.Table, known_bad: int) -> dict[str, int]:
    """The summary's file counts; ``known_bad`` is :class:`triage.knownbad.KnownBad`'s count of the
    same table (exact known-bad hashes and near-duplicates of known-bad pictures)."""
    src = table.column("source").to_pylist()
    known = table.column("known").to_pylist()
    status = table.column("status").to_pylist()
    hashed = [h is not None for h in table.column("sha256").to_pylist()]
    sizes = table.column("size").to_pylist()
    return {
        "entries": table.num_rows,
        "allocated": src.count("allocated"),
        "deleted": src.count("deleted"),
        "orphan": src.count("orphan"),
        "carved": src.count("carved"),
        "logical": src.count("logical"),  # members of a logical source (tar, zip, UFDR, folder)
        "archive_members": src.count("archive member"),  # rows listed from archives found (triage.archiveplan)
        "vss": sum(1 for s in src if s.startswith("vss:")),  # deleted or changed files found only in shadow copies
        "hashed": sum(hashed),
        "hashed_bytes": sum(s for s, h in zip(sizes, hashed) if h),
        "unreadable": sum(1 for s in status if s.startswith(("unreadable", "partial"))),
        "images_phashed": sum(1 for p in table.column("phash").to_pylist() if p),
        "ext_mismatch": sum(1 for m in table.column("ext_mismatch").to_pylist() if m),
        "known_bad": known_bad,
        "known_bad_exact": known.count("known-bad"),  # of them, by an exact hash
        "notable": known.count("notable"),
        "known_good": known.count("known-good"),
        "phash_matches": sum(1 for m in table.column("phash_match").to_pylist() if m),
    }


def allocated_problems(table: pa.Table) -> list[dict]:
    """Allocated files that could not be (fully) read: these make a run exit 4."""
    read_in_place = pc.is_in(table.column("source"), pa.array(["allocated", "logical"]))  # logical: members of a tar/zip/folder source
    alloc = table.filter(read_in_place).select(["partition", "path", "status"])
    return [r for r in alloc.to_pylist() if r["status"].startswith(("unreadable", "partial"))]
