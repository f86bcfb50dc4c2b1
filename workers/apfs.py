"""APFS containers: recognised, their volumes listed as rows of their own and opened through libfsapfs.

Why libfsapfs and not TSK: TSK reads APFS only through its pool layer
(``fls -P apfs -B <block>``), which pytsk3 does not expose; libfsapfs-python
(pyfsapfs, on PyPI) is already how the container's volumes are listed, reads each
volume's file-system tree and file data (including decmpfs-compressed files), and
reports locked (FileVault) volumes. So an APFS volume is walked by a second,
small filesystem backend beside TSK (:mod:`triage.workers.apfswalk`), and
``open_fs`` hands the content tasks an :class:`ApfsFS`, which offers the one
part of ``pytsk3.FS_Info`` they use (``open_meta(inode=).read_random``): hashing,
typing, pHash, known-item checks and ranking run unchanged. TSK's ``fls``/``icat
-P apfs`` is the oracle the tests compare against.

Each volume is a row (``layer`` ``apfs-volume``, ``parent`` the container's row,
slot ``apfs:NAME``); the container's row is ``meta`` (layer ``apfs-container``),
like an LVM physical volume. A volume libfsapfs cannot read still gets its row,
named ``volume N``, whose walk status says why (the device counts as partly
triaged); a locked volume's status starts with ``encrypted`` (no key is tried).
The container superblock (``NXSB`` at byte 32) is the signature.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from triage.rules.errors import FilesystemError
from triage.workers.formats import RegionFile, oneline
from triage.workers.vss import VSS_BASE

log = logging.getLogger(__name__)

Reader = Callable[[int, int], bytes]
MAGIC = b"NXSB"
#: an APFS volume's index: APFS_BASE + 100 * (container row index) + n, as LVM's LV_BASE does (above
#: every LV index, which may reach 1000 + 100 x a GPT's partition count)
APFS_BASE = 1_000_000
MAX_VOLUMES = 100


def is_container(read: Reader, offset: int) -> bool:
    try:
        return read(offset + 32, 4) == MAGIC
    except (OSError, RuntimeError):
        return False


def _open_container(read: Reader, offset: int, length: int):
    import pyfsapfs

    c = pyfsapfs.container()
    c.open_file_object(RegionFile(read, offset, length))
    return c


def _volumes(read: Reader, offset: int, length: int) -> list[tuple[str, str, int, bool]]:
    """(name, UUID, size, locked) of each volume; one libfsapfs cannot read is ``volume N`` with no UUID."""
    try:
        c = _open_container(read, offset, length)
    except (OSError, IOError) as exc:
        log.warning("APFS superblock at byte %d but no container readable: %s", offset, oneline(exc))
        return []
    try:
        out = []
        for i in range(min(c.number_of_volumes, MAX_VOLUMES)):
            try:
                v = c.get_volume(i)
            except (OSError, IOError) as exc:
                log.warning("APFS container at byte %d: volume %d unreadable: %s", offset, i, oneline(exc))
                out.append((f"volume {i}", "", length, False))
                continue
            try:
                size = int(v.size)
            except (OSError, IOError):  # libfsapfs cannot size some (empty) volumes: they share the container
                size = length
            out.append((v.name or f"volume {i}", v.identifier or "", size, bool(v.is_locked())))
        return out
    except (OSError, IOError) as exc:
        log.warning("APFS container at byte %d: volumes unreadable: %s", offset, oneline(exc))
        return out
    finally:
        c.close()


def expand(parts: list, read: Reader, image_size: int) -> list:
    """``parts`` with each APFS container marked ``meta`` and its volumes added after them."""
    out, added = [], []
    for p in parts:
        if p.flags != "alloc" or p.start >= image_size or not is_container(read, p.start):
            out.append(p)
            continue
        vols = _volumes(read, p.start, min(p.length, image_size - p.start))
        names = ", ".join(v[0] for v in vols) or "none readable"
        out.append(replace(p, flags="meta", layer="apfs-container",
                           description=f"{p.description + ': ' if p.description else ''}APFS container (volumes: {names})"))
        for n, (name, ident, size, locked) in enumerate(vols):
            added.append(replace(p, index=APFS_BASE + 100 * p.index + n, slot=f"apfs:{name}", length=size,
                                 flags="alloc", volume_system="apfs", parent=p.index, layer="apfs-volume",
                                 extents=(), description=f"APFS volume {name} ("
                                 + (f"id {ident}" if ident else "unreadable") + (", encrypted" if locked else "")
                                 + f") in volume {p.index}"))
    return out + added


def volume_number(index: int) -> int | None:
    """Which volume of its container an index names, or None when it is not an APFS volume's."""
    return (index - APFS_BASE) % 100 if APFS_BASE <= index < VSS_BASE else None


class _Entry:
    """A file entry as the content tasks read it (``read_random(pos, n)``, pytsk3's File's signature)."""

    def __init__(self, entry) -> None:
        self.entry = entry

    def read_random(self, pos: int, n: int) -> bytes:
        return self.entry.read_buffer_at_offset(n, pos)


class ApfsFS:
    """The n-th volume of the APFS container at ``offset``, opened through libfsapfs (cached per worker thread
    by ``open_fs`` like a TSK filesystem; ``release`` closes the container). Raises FilesystemError, naming
    the volume and the reason, when it cannot be read, and an ``encrypted`` status when it is locked."""

    def __init__(self, read: Reader, offset: int, length: int, n: int) -> None:
        self.offset, self.n = offset, n
        try:
            self.container = _open_container(read, offset, length)
        except (OSError, IOError) as exc:
            raise FilesystemError(f"APFS volume {n}: container unreadable: {oneline(exc)}") from exc
        try:
            self.volume = self.container.get_volume(n)
            self.name = self.volume.name or f"volume {n}"
            locked = bool(self.volume.is_locked())
        except (OSError, IOError) as exc:
            self.container.close()
            raise FilesystemError(f"APFS volume {n}: unreadable by libfsapfs: {oneline(exc)}") from exc
        if locked:
            ident = self.volume.identifier
            self.container.close()
            raise FilesystemError(f"encrypted: APFS volume {self.name} (FileVault, id {ident}); "
                                  "locked, not walked (no key is tried for APFS)")

    def open_meta(self, inode: int) -> _Entry:
        entry = self.volume.get_file_entry_by_identifier(inode)
        if entry is None:
            raise OSError(f"APFS volume {self.name}: no file entry {inode}")
        return _Entry(entry)

    def release(self) -> None:
        self.container.close()
