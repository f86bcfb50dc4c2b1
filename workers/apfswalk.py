"""The metadata walk of one APFS volume through libfsapfs: the rows TSK's walk makes, from a second backend.

TSK reads APFS only through its pool layer, which pytsk3 does not expose (see
:mod:`triage.workers.apfs`), so a volume is walked here, giving rows of the same
shape as :func:`triage.workers.walk.walk_filesystem` and as ``fls -r -p -P apfs``
lists them: ``path`` root-relative and '/'-joined, ``inode`` the APFS object id
(TSK's inode number too), ``type`` the `fls` pair ('r/r', 'd/d', 'l/l', ...),
every row ``allocated`` (APFS keeps no deleted names; carving of APFS free space
is not done, see below), and UTC nanosecond times.

Times: libfsapfs (up to at least 20260921) reads ``j_inode_val_t``'s first two
times the other way round from Apple's "Apple File System Reference" (``create_time``
then ``mod_time``) and from TSK, so its ``creation_time`` is the file's modification
time and the reverse; the walk swaps them back and the tests check every time
against ``fls -l -P apfs``.

Carving: an APFS volume's row has no image extents of its own (it shares the
container's blocks), so :func:`triage.carveplan.partition_extents` gives it none;
``allocated`` still lists the files' data ranges, in image bytes.
"""

from __future__ import annotations

import logging
import stat

import pyarrow as pa

from triage.rules.errors import FilesystemError
from triage.workers.apfs import ApfsFS
from triage.workers.formats import oneline
from triage.workers.refs import VolumeRef
from triage.workers.walk import MAX_DEPTH, WALK_SCHEMA, WalkResult, merge_ranges

log = logging.getLogger(__name__)

FILESYSTEM = "APFS"
#: the `fls` letter of each file type (S_IFMT of the inode's mode)
TYPE_LETTERS = {stat.S_IFREG: "r", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFIFO: "p", stat.S_IFCHR: "c",
                stat.S_IFBLK: "b", stat.S_IFSOCK: "s", 0o160000: "w"}
READ_ERRORS = (OSError, IOError, RuntimeError)


def _time(entry, name: str) -> int | None:
    """A libfsapfs time as UTC nanoseconds since 1970 (APFS's own unit), None when the field is 0."""
    value = getattr(entry, f"get_{name}_as_integer")()
    return int(value) or None


class _ApfsWalker:
    def __init__(self, vol: VolumeRef, fs: ApfsFS) -> None:
        self.vol, self.fs = vol, fs
        self.cols: dict[str, list] = {f.name: [] for f in WALK_SCHEMA}
        self.runs: list[tuple[int, int]] = []

    def data(self, entry, size: int) -> int | None:
        """The image offset of the file's first data byte; every extent is recorded as allocated space."""
        first = None
        try:
            for i in range(entry.number_of_extents if size else 0):
                offset, length, _flags = entry.get_extent(i)
                if first is None:
                    first = self.vol.offset + int(offset)
                self.runs.append((self.vol.offset + int(offset), int(length)))
        except READ_ERRORS as exc:
            log.warning("APFS volume %s: extents of %s unreadable: %s", self.fs.name, entry.identifier, oneline(exc))
        return first

    def add(self, entry, path: str, name: str, status: str) -> tuple[int, str]:
        mode = int(entry.file_mode or 0)
        letter = TYPE_LETTERS.get(stat.S_IFMT(mode), "-")
        size = int(entry.size or 0) if letter == "r" else 0
        c = self.cols
        c["partition"].append(self.vol.index)
        c["path"].append(path)
        c["name"].append(name)
        c["inode"].append(int(entry.identifier))
        c["attr_type"].append(None)
        c["attr_id"].append(None)
        c["type"].append(f"{letter}/{letter}")
        c["size"].append(size)
        c["deleted"].append(False)
        c["source"].append("allocated")
        # libfsapfs's "creation" is the on-disk mod_time and its "modification" the create_time (module docstring)
        c["mtime"].append(_time(entry, "creation_time"))
        c["atime"].append(_time(entry, "access_time"))
        c["ctime"].append(_time(entry, "inode_change_time"))
        c["crtime"].append(_time(entry, "modification_time"))
        c["status"].append(status)
        c["offset"].append(self.data(entry, size) if letter == "r" else None)
        return int(entry.identifier), letter

    def walk(self, directory, prefix: str, ancestors: tuple[int, ...]) -> None:
        try:
            entries = [directory.get_sub_file_entry(i) for i in range(directory.number_of_sub_file_entries)]
        except READ_ERRORS as exc:
            raise FilesystemError(f"directory {prefix or '/'} unreadable: {oneline(exc)}") from exc
        for entry in entries:
            name = entry.name or ""
            path = f"{prefix}{name}"
            ident, letter = self.add(entry, path, name, "ok")
            if letter != "d":
                continue
            if ident in ancestors:
                self.cols["status"][-1] = f"directory loop: inode {ident} is its own ancestor, not descended"
            elif len(ancestors) >= MAX_DEPTH:
                self.cols["status"][-1] = f"directory nesting deeper than {MAX_DEPTH}, not descended"
            else:
                try:
                    self.walk(entry, path + "/", ancestors + (ident,))
                except FilesystemError as exc:
                    self.cols["status"][-1] = str(exc)

    def table(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict(self.cols, schema=WALK_SCHEMA)


def walk_apfs(vol: VolumeRef, fs: ApfsFS) -> WalkResult:
    """Walk one APFS volume opened by ``open_fs``; an unreadable root gives the rows so far and a status."""
    walker = _ApfsWalker(vol, fs)
    status = "ok"
    try:
        root = fs.volume.get_root_directory()
        walker.walk(root, "", (int(root.identifier),))
    except (FilesystemError, *READ_ERRORS) as exc:
        status = f"APFS volume {fs.name}: root directory unreadable: {oneline(exc)}"
    return WalkResult(vol.index, FILESYSTEM, status, walker.table(), merge_ranges(walker.runs))
