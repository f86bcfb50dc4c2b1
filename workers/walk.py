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
from triage.workers.image import _oneline
from triage.workers.refs import VolumeRef
from triage.workers.schema import FILES_SCHEMA
from triage.workers.volumes import fs_type_name, open_fs

#: the columns the walk fills; content columns come from the content tasks
WALK_SCHEMA = pa.schema([FILES_SCHEMA.field(n) for n in (
    "partition", "path", "name", "inode", "attr_type", "attr_id", "type", "size", "deleted", "source",
    "mtime", "atime", "ctime", "crtime", "status")])

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


def hashable(type_pair: str) -> bool:
    """Whether a row's content is read and hashed: regular and virtual files (`icat` output)."""
    return type_pair[-1] in ("r", "v")


class _Walker:
    def __init__(self, vol: VolumeRef, fs: pytsk3.FS_Info) -> None:
        self.vol = vol
        self.fs = fs
        self.ntfs = fs_type_name(fs) == "NTFS"
        self.cols: dict[str, list] = {f.name: [] for f in WALK_SCHEMA}

    def add(self, entry, path: str, name: str, deleted: bool, orphan: bool, attr, status: str) -> None:
        info = entry.info
        meta = info.meta
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

    def add_entry(self, entry, path: str, name: str, deleted: bool, orphan: bool, status: str) -> None:
        meta = entry.info.meta
        if self.ntfs and meta is not None:
            printed = False
            try:
                attrs = list(entry)
            except OSError:
                attrs = []
            for attr in attrs:
                atype = int(attr.info.type)
                if atype in (ATTR_NTFS_DATA, ATTR_NTFS_IDXROOT):
                    printed = True
                    self.add(entry, path, name, deleted, orphan, attr, status)
            if printed:
                return
        self.add(entry, path, name, deleted, orphan, None, status)

    def walk(self, directory, prefix: str, ancestors: tuple[int, ...], orphan: bool) -> None:
        try:
            entries = list(directory)
        except OSError as exc:
            raise FilesystemError(f"directory {prefix or '/'} unreadable: {_oneline(exc)}") from exc
        for entry in entries:
            info = entry.info
            raw = info.name.name
            if raw in (b".", b"..", ".", ".."):
                continue
            name = _decode(raw)
            path = f"{prefix}{name}"
            deleted = bool(int(info.name.flags) & pytsk3.TSK_FS_NAME_FLAG_UNALLOC)
            meta = info.meta
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
                    sub = entry.as_directory()
                except OSError as exc:
                    if not deleted:
                        status = f"directory unreadable: {_oneline(exc)}"
            self.add_entry(entry, path, name, deleted, orphan, status)
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
    walker = _Walker(vol, fs)
    try:
        root = fs.open_dir(inode=fs.info.root_inum)
        walker.walk(root, "", (int(fs.info.root_inum),), False)
    except (OSError, FilesystemError) as exc:
        return WalkResult(vol.index, fs_type_name(fs), f"root directory unreadable: {_oneline(exc)}", walker.table())
    return WalkResult(vol.index, fs_type_name(fs), "ok", walker.table())
