"""The metadata walk of one filesystem: every entry `fls -r -p` lists, with no content read.

Allocated and deleted names, orphan files (TSK's ``$OrphanFiles`` virtual
folder) and, on NTFS, every ``$DATA`` stream and named index the way `fls`
prints them. A directory that is its own ancestor (a loop) is listed but not
descended into, and says so in its ``status``; an unreadable directory likewise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import pytsk3

from triage.rules.errors import FilesystemError
from triage.workers.apfs import ApfsFS
from triage.workers.image import TSK_ERRORS, _oneline
from triage.workers.refs import VolumeRef
from triage.workers.schema import FILES_SCHEMA
from triage.workers.volumes import fs_type_name, open_fs, volume_map

#: the columns the walk fills; content columns come from the content tasks
WALK_SCHEMA = pa.schema([FILES_SCHEMA.field(n) for n in (
    "partition", "path", "name", "inode", "attr_type", "attr_id", "type", "size", "deleted", "source",
    "mtime", "atime", "ctime", "crtime", "status", "offset")])

# TSK's own letters (tsk_fs_name_type_str / tsk_fs_meta_type_str), indexed by enum value
NAME_TYPE_STR = ["-", "p", "c", "d", "b", "r", "l", "s", "h", "w", "v", "V"]
META_TYPE_STR = ["-", "r", "d", "p", "c", "b", "l", "s", "h", "w", "v", "V"]

ATTR_NTFS_DATA = 128
ATTR_NTFS_IDXROOT = 144
MAX_DEPTH = 128  # TSK's own dir-walk depth limit
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class WalkResult:
    partition: int
    filesystem: str | None
    status: str
    table: pa.RecordBatch
    #: sorted, merged (start, length) image byte ranges holding allocated entries' data:
    #: the complement within the partition is what carving treats as unallocated
    allocated: tuple[tuple[int, int], ...] = ()


def _decode(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    return raw.decode("utf-8", "backslashreplace")


def _ts(seconds: int, nano: int) -> int | None:
    if not seconds:
        return None
    return int(seconds) * 1_000_000_000 + int(nano or 0)


def hashable(type_pair: str, status: str = "ok") -> bool:
    """Whether a row's content is read and hashed: regular and virtual files (`icat` output)."""
    return type_pair[-1] in ("r", "v") and not status.startswith("no content")


class _Walker:
    def __init__(self, vol: VolumeRef, fs: pytsk3.FS_Info) -> None:
        self.vol = vol
        self.fs = fs
        self.ntfs = fs_type_name(fs) == "NTFS"
        self.block = int(fs.info.block_size)
        self.map = volume_map(vol, fs)  # volume byte -> image byte (None inside an unlocked encrypted volume)
        self.cols: dict[str, list] = {f.name: [] for f in WALK_SCHEMA}
        self.runs: list[tuple[int, int]] = []

    def data_runs(self, entry, allocated: bool) -> dict[tuple[int, int], int]:
        """First image byte offset of each non-resident attribute, keyed by (type, id).

        For an allocated entry, every run of every attribute is also recorded as allocated space.
        """
        first: dict[tuple[int, int], int] = {}
        try:
            attrs = list(entry)
        except TSK_ERRORS:
            return first
        for attr in attrs:
            if not int(attr.info.flags) & pytsk3.TSK_FS_ATTR_NONRES:
                continue
            try:
                runs = list(attr)
            except TSK_ERRORS:
                continue
            for run in runs:
                if int(run.flags) & (pytsk3.TSK_FS_ATTR_RUN_FLAG_FILLER | pytsk3.TSK_FS_ATTR_RUN_FLAG_SPARSE):
                    continue
                rel = int(run.addr) * self.block
                key = (int(attr.info.type), int(attr.info.id))
                if key not in first and int(run.offset) == 0:
                    first[key] = self.map.offset(rel)
                if allocated and run.len:
                    self.runs.extend(self.map.ranges(rel, int(run.len) * self.block))
        return first

    def allocated(self) -> tuple[tuple[int, int], ...]:
        return merge_ranges(self.runs)

    def add(self, entry, mobj, path: str, name: str, deleted: bool, orphan: bool, attr, status: str,
            first: dict[tuple[int, int], int]) -> None:
        info = entry.info
        meta = mobj.info.meta
        ntype = NAME_TYPE_STR[int(info.name.type)] if int(info.name.type) < len(NAME_TYPE_STR) else "-"
        if meta is None:
            mtype = "-"
        elif attr is not None and int(attr.info.type) == ATTR_NTFS_DATA and int(meta.type) == pytsk3.TSK_FS_META_TYPE_DIR:
            mtype = "r"  # fls prints a directory's named stream as a regular file
        else:
            mtype = META_TYPE_STR[int(meta.type)] if int(meta.type) < len(META_TYPE_STR) else "-"
        suffix = ""
        if attr is not None:
            aname = _decode(attr.info.name)
            if aname and aname != "$Data" and not (int(attr.info.type) == ATTR_NTFS_IDXROOT and aname == "$I30"):
                suffix = ":" + aname
        c = self.cols
        c["partition"].append(self.vol.index)
        c["path"].append(path + suffix)
        c["name"].append(name + suffix)
        c["inode"].append(int(info.name.meta_addr))
        c["attr_type"].append(int(attr.info.type) if attr is not None else None)
        c["attr_id"].append(int(attr.info.id) if attr is not None else None)
        c["type"].append(f"{ntype}/{mtype}")
        size = int(attr.info.size) if attr is not None and suffix else (int(meta.size) if meta is not None else 0)
        c["size"].append(max(size, 0))
        c["deleted"].append(deleted)
        c["source"].append("orphan" if orphan else ("deleted" if deleted else "allocated"))
        for t in ("mtime", "atime", "ctime", "crtime"):
            c[t].append(_ts(getattr(meta, t), getattr(meta, t + "_nano", 0)) if meta is not None else None)
        c["status"].append(status)
        if attr is not None:
            c["offset"].append(first.get((int(attr.info.type), int(attr.info.id))))
        else:
            c["offset"].append(next(iter(first.values()), None) if meta is not None else None)

    def add_entry(self, entry, mobj, path: str, name: str, deleted: bool, orphan: bool, status: str) -> None:
        """One row per `fls` line for this name; ``mobj`` is the file object carrying its metadata."""
        meta = mobj.info.meta
        first: dict[tuple[int, int], int] = {}
        if meta is not None:
            allocated = not deleted and not orphan and bool(int(meta.flags) & pytsk3.TSK_FS_META_FLAG_ALLOC)
            first = self.data_runs(mobj, allocated)
        if self.ntfs and meta is not None:
            printed = False
            try:
                attrs = list(mobj)
            except TSK_ERRORS:
                attrs = []
            for attr in attrs:
                atype = int(attr.info.type)
                if atype in (ATTR_NTFS_DATA, ATTR_NTFS_IDXROOT):
                    printed = True
                    self.add(entry, mobj, path, name, deleted, orphan, attr, status, first)
            if printed:
                return
            if status == "ok" and int(meta.type) == pytsk3.TSK_FS_META_TYPE_REG:
                status = "no content: no $DATA attribute"  # `icat` finds nothing to read either
        self.add(entry, mobj, path, name, deleted, orphan, None, status, first)

    def walk(self, directory, prefix: str, ancestors: tuple[int, ...], orphan: bool) -> None:
        try:
            entries = list(directory)
        except TSK_ERRORS as exc:
            raise FilesystemError(f"directory {prefix or '/'} unreadable: {_oneline(exc)}") from exc
        for entry in entries:
            info = entry.info
            raw = info.name.name
            if raw in (b".", b"..", ".", ".."):
                continue
            name = _decode(raw)
            path = f"{prefix}{name}"
            deleted = bool(int(info.name.flags) & pytsk3.TSK_FS_NAME_FLAG_UNALLOC)
            meta, mobj = info.meta, entry
            if meta is None and int(info.name.meta_addr) != 0:
                # pytsk3 leaves some deleted and orphan names without metadata that `fls` and
                # `icat` still read by address (NTFS sequence mismatch, FAT orphans)
                try:
                    mobj = self.fs.open_meta(inode=int(info.name.meta_addr))
                    meta = mobj.info.meta
                except TSK_ERRORS:
                    meta, mobj = None, entry
            is_dir = meta is not None and int(meta.type) in (pytsk3.TSK_FS_META_TYPE_DIR, pytsk3.TSK_FS_META_TYPE_VIRT_DIR)
            status = "ok"
            descend = False
            if is_dir:
                addr = int(meta.addr)
                realloc = deleted and not (int(meta.flags) & pytsk3.TSK_FS_META_FLAG_UNALLOC)
                if addr in ancestors:
                    status = f"directory loop: inode {addr} is its own ancestor, not descended"
                elif len(ancestors) >= MAX_DEPTH:
                    status = f"directory nesting deeper than {MAX_DEPTH}, not descended"
                elif not realloc:
                    descend = True
            child_orphan = orphan or (not prefix and name == "$OrphanFiles" and int(info.name.type) == pytsk3.TSK_FS_NAME_TYPE_VIRT_DIR)
            sub = None
            if descend:
                try:
                    sub = mobj.as_directory()
                except TSK_ERRORS as exc:
                    if not deleted:
                        status = f"directory unreadable: {_oneline(exc)}"
            self.add_entry(entry, mobj, path, name, deleted, orphan, status)
            if sub is not None:
                try:
                    self.walk(sub, path + "/", ancestors + (int(meta.addr),), child_orphan)
                except FilesystemError as exc:
                    if not deleted:
                        self.cols["status"][-1] = str(exc)

    def table(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict(self.cols, schema=WALK_SCHEMA)


def walk_filesystem(vol: VolumeRef) -> WalkResult:
    """Walk one partition's filesystem. A partition with no readable filesystem gives no rows and a status."""
    empty = pa.RecordBatch.from_pydict({f.name: [] for f in WALK_SCHEMA}, schema=WALK_SCHEMA)
    try:
        fs = open_fs(vol)
    except FilesystemError as exc:
        return WalkResult(vol.index, None, str(exc), empty)
    if isinstance(fs, ApfsFS):  # an APFS volume, read through libfsapfs
        from triage.workers.apfswalk import walk_apfs  # imports this module

        return walk_apfs(vol, fs)
    walker = _Walker(vol, fs)
    try:
        root = fs.open_dir(inode=fs.info.root_inum)
        walker.data_runs(fs.open_meta(inode=fs.info.root_inum), True)  # the root's own blocks are allocated
        walker.walk(root, "", (int(fs.info.root_inum),), False)
    except (OSError, RuntimeError, FilesystemError) as exc:
        return WalkResult(vol.index, fs_type_name(fs), f"root directory unreadable: {_oneline(exc)}", walker.table(),
                          walker.allocated())
    status = "ok"
    if vol.offset + vol.length > vol.image.size:
        status = (f"truncated: the partition runs {vol.offset + vol.length - vol.image.size} bytes past the end of "
                  f"the image ({vol.image.size} bytes); files there are missing or partial")
    return WalkResult(vol.index, fs_type_name(fs), status, walker.table(), walker.allocated())


def merge_ranges(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sort (start, length) ranges and merge overlapping or touching ones."""
    out: list[list[int]] = []
    for start, length in sorted(ranges):
        if out and start <= out[-1][0] + out[-1][1]:
            out[-1][1] = max(out[-1][1], start + length - out[-1][0])
        else:
            out.append([start, length])
    return tuple((s, n) for s, n in out)
