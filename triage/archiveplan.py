"""Archives found in evidence: planning their expand tasks and folding their rows into the run.

A file whose content task says it is an archive (libmagic type taken by a reader of
:data:`triage.workers.archives.ARCHIVES`) gets one expand task. The archives one carve
chunk carved make one task between them, expanded in turn (issue 11: on a dense device a
task costs the cluster more than a small carved archive does); each keeps its own name
(``expand-carved-OFFSET``), the batch's result says which rows are whose, and each
archive's rows are kept as if it had had its own task. (Batching a content batch's file
archives the same way measured slower, not faster: see issue 11.) An expand task returns
its member rows (final: checked against the known-item sets on the worker) and, when the
archive could not be fully expanded, one ``archive status`` row: that status is moved
onto the archive's own row when the run finishes. Members of a carved archive only count
once carving is merged, like the carved row itself (it may be merged away as a repeat of
an allocated file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from triage.workers.archives import ARCHIVE_STATUS, BATCH_NAME, ArchiveBatch, ArchiveRef, archive_mimes

if TYPE_CHECKING:
    from triage.runstate import ImageRun

CARVED = "expand-carved-"  # task-name prefix of a carved archive's expansion
BATCH = 64  # carved archives expanded by one task at most

# An archive's row is named by (partition, path). Paths are unique within a partition except where
# a deleted name repeats a live one's; such twins each get their members, and a status meant for
# one of them is shown on both.


def plan_expansions(run: ImageRun, idx: int, table: pa.Table) -> None:
    """Expand tasks for the archives among content rows of partition ``idx``."""
    lim = run.settings.archives
    if lim is None or lim.depth <= 0 or table.num_rows == 0:
        return
    found = table.filter(pc.and_(pc.is_in(table.column("mime"), pa.array(sorted(archive_mimes()))),
                                 pc.equal(table.column("status"), "ok")))
    if found.num_rows == 0:
        return
    walk = run.walks[idx].table
    vol = run.vols[idx]
    for r in found.select(["row", "mime"]).to_pylist():
        w = {k: walk.column(k)[r["row"]].as_py() for k in ("path", "size", "inode", "attr_type", "attr_id", "deleted")}
        ref = ArchiveRef(idx, w["path"], w["size"], r["mime"], w["deleted"], run.settings.options, lim, run.known,
                         volume=vol, inode=w["inode"], attr_type=w["attr_type"], attr_id=w["attr_id"])
        _add(run, f"expand-{idx}-{r['row']:08d}", ref)


def plan_carved(run: ImageRun, table: pa.Table, chunk: str) -> None:
    """One expand task for the archives carve chunk ``chunk`` carved (their partition is settled
    when carving is merged). Chunks report each object once, so a batch holds the same archives
    in every run and its checkpoint stays valid for a resumed one."""
    lim = run.settings.archives
    if lim is None or lim.depth <= 0 or table.num_rows == 0:
        return
    found = table.filter(pc.is_in(table.column("mime"), pa.array(sorted(archive_mimes()))))
    names, refs = [], []
    for r in found.select(["path", "size", "mime", "offset", "status"]).to_pylist():
        name = f"{CARVED}{r['offset']:016d}"
        if r["status"] == "ok" and name not in run.expansion_refs:
            refs.append(ArchiveRef(0, r["path"], r["size"], r["mime"], True, run.settings.options, lim, run.known,
                                   image=run.ref, offset=r["offset"]))
            names.append(name)
    # at most BATCH archives a task: one batch of ~60 archives measured cheaper than 60 tasks, but a batch
    # of 2,000 small file archives cost 4x their single tasks under a real cluster (not yet understood), so
    # a chunk dense with archives gets several batches rather than one unbounded one
    for k in range(0, len(names), BATCH):
        suffix = "" if k == 0 else f"-{k // BATCH}"
        _add_batch(run, f"expand-batch-{chunk}{suffix}", ArchiveBatch(tuple(names[k:k + BATCH]), tuple(refs[k:k + BATCH])))


def _add(run: ImageRun, name: str, ref: ArchiveRef) -> None:
    from triage.tasks import KINDS, PRIORITY_SMALL, Task  # the task kinds call back into this module

    if name not in run.expansion_refs:  # a file read again (a retried task) is expanded once
        run.expansion_refs[name] = ref
        run.add(Task(name, KINDS.get("expand"), ref, PRIORITY_SMALL))


def _add_batch(run: ImageRun, name: str, batch: ArchiveBatch) -> None:
    from triage.tasks import KINDS, PRIORITY_SMALL, Task

    run.expansion_refs.update(zip(batch.names, batch.refs))
    run.add(Task(name, KINDS.get("expand-batch"), batch, PRIORITY_SMALL))


def got_batch(run: ImageRun, batch: ArchiveBatch, result: pa.Table) -> None:
    """A batch's rows, split by archive and kept as each archive's own task would have kept them."""
    owner = result.column(BATCH_NAME).to_pylist()
    rows: dict[str, list[int]] = {}
    for i, name in enumerate(owner):
        rows.setdefault(name, []).append(i)
    result = result.drop_columns([BATCH_NAME])
    for name in batch.names:
        at = rows.get(name, [])
        if at and at[-1] - at[0] == len(at) - 1:
            # the batch writes each archive's rows together: a zero-copy slice (a take copies every
            # column, ~2 ms an archive, which the driver spent 2 s on with 1,000 carved archives)
            got_expansion(run, name, result.slice(at[0], len(at)))
        else:
            got_expansion(run, name, result.take(pa.array(at, type=pa.int64())))


def batch_failed(run: ImageRun, batch: ArchiveBatch, why: str) -> None:
    for name in batch.names:
        expansion_failed(run, name, why)


def got_expansion(run: ImageRun, name: str, result: pa.Table) -> None:
    """Keep an expand task's rows; its archive's status aside; announce hits that are final."""
    is_status = pc.equal(result.column("source"), ARCHIVE_STATUS)
    if is_status.null_count or pc.any(is_status).as_py():
        for status in result.filter(is_status).column("status").to_pylist():
            run.archive_status[name] = status
        members = result.filter(pc.invert(is_status))
    else:
        members = result  # no status row: nothing to filter out (a filter copies every column)
    run.expanded[name] = members
    if not name.startswith(CARVED):
        for r in run.knownbad.hits(members):
            run.hit(r["partition"], r["path"], r)


def expansion_failed(run: ImageRun, name: str, why: str) -> None:
    run.archive_status[name] = f"archive not expanded: {why}"


def fold(run: ImageRun, tables: list[pa.Table], carved: pa.Table | None) -> list[pa.Table]:
    """The member tables to add to the result (in task-name order, so the merge is the same
    whatever order tasks ended in), with each archive's status set on its own row."""
    kept = set(carved.column("path").to_pylist()) if carved is not None else set()
    carved_parts = dict(zip(carved.column("path").to_pylist(), carved.column("partition").to_pylist())) \
        if carved is not None else {}
    out = []
    status: dict[tuple[int | None, str], str] = {}
    for name in sorted(set(run.expanded) | set(run.archive_status)):
        task = run.expansion_refs[name]
        if name.startswith(CARVED):
            if task.path not in kept:
                continue  # the carved archive was merged away, and with it what it holds
            part = carved_parts[task.path]
            status[(None, task.path)] = run.archive_status.get(name, "")
            members = run.expanded.get(name)
            if members is not None and members.num_rows:
                members = members.set_column(0, members.schema.field("partition"),
                                             pa.array([part] * members.num_rows, type=pa.int32()))
                for r in run.knownbad.hits(members):
                    run.hit(r["partition"], r["path"], r)
        else:
            status[(task.partition, task.path)] = run.archive_status.get(name, "")
            members = run.expanded.get(name)
        if members is not None and members.num_rows:
            out.append(members)
    status = {k: v for k, v in status.items() if v}
    if status:
        for i, t in enumerate(tables):
            tables[i] = _with_status(t, status)
    return out


def _with_status(table: pa.Table, status: dict[tuple[int | None, str], str]) -> pa.Table:
    paths, parts = table.column("path").to_pylist(), table.column("partition").to_pylist()
    old = table.column("status").to_pylist()
    new = []
    for p, part, s in zip(paths, parts, old):
        why = status.get((part, p)) or (status.get((None, p)) if p.startswith("$Carved/") else None)
        new.append(s if why is None else (why if s == "ok" else f"{s}; {why}"))
    i = table.schema.get_field_index("status")
    return table.set_column(i, table.schema.field("status"), pa.array(new, type=pa.string()))
