"""LVM2: a physical volume (a partition, or a whole image) holds a volume group whose logical volumes
are each walked like a partition, read through their segments as the group's metadata maps them
(:mod:`lvmmeta`), or through libvslvm where they cannot be mapped (striped, thin, RAID).

In ``volumes.parquet`` the hierarchy reads disk -> partition -> container -> volume:
the physical volume's own row keeps its partition-table slot and is marked
``meta`` (LVM metadata and extents, not a filesystem), and each logical volume is
a row of its own, slot ``lvm:VG/LV``, ``volume_system`` ``lvm``, described with the
partition it lives in. A logical volume's index is ``LV_BASE + 100 * (PV row
index) + n`` (n-th LV of the group), so a worker knows which LV a volume
description means without any state. Its ``start`` is the physical volume's (the
bytes an LV occupies need not be contiguous); its ``length`` the LV's size; its
``extents`` the image ranges its segments occupy (read by :mod:`lvmmeta`, since
libvslvm does not say), or None where they cannot be mapped. Its ``layer`` is
``lvm-lv`` and its ``parent`` the physical volume's row; the PV's layer is ``lvm-pv``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from triage.rules.errors import FilesystemError
from triage.workers.formats import HandleMedia, RegionFile, oneline
from triage.workers import lvmmeta
from triage.workers.apfs import APFS_BASE
from triage.workers.lvmmeta import LogicalVolume
from triage.workers.volmap import VolumeMap

log = logging.getLogger(__name__)

LABEL = b"LABELONE"
LV_BASE = 1000
MAX_LVS = 100

Reader = Callable[[int, int], bytes]


def is_physical_volume(read: Reader, offset: int) -> bool:
    """An LVM2 label is in one of the first four sectors: 'LABELONE', then 'LVM2 001' at +24."""
    try:
        head = read(offset, 2048)
    except (OSError, RuntimeError):  # past the end of a truncated image: no label to see
        return False
    return any(head[s:s + 8] == LABEL and head[s + 24:s + 32] == b"LVM2 001" for s in range(0, 2048, 512))


def _open(read: Reader, offset: int, length: int) -> tuple[Any, RegionFile]:
    import pyvslvm

    region = RegionFile(read, offset, length)
    handle = pyvslvm.handle()
    handle.open_file_object(region)
    handle.open_physical_volume_files_as_file_objects([region])  # a group on one physical volume
    return handle, region


def logical_volumes(read: Reader, offset: int, length: int) -> list[LogicalVolume]:
    """The volume group's logical volumes, in metadata order (empty when neither the metadata nor libvslvm
    can be read)."""
    found = lvmmeta.logical_volumes(read, offset)
    if found is not None:
        return found[:MAX_LVS]
    try:
        handle, _ = _open(read, offset, length)
    except (OSError, IOError) as exc:
        log.warning("LVM2 label at byte %d but no volume group readable: %s", offset, oneline(exc))
        return []
    try:
        vg = handle.get_volume_group()
        out = []
        for i in range(min(vg.number_of_logical_volumes, MAX_LVS)):
            lv = vg.get_logical_volume(i)
            out.append(LogicalVolume(vg.name, lv.name, lv.identifier, int(lv.size)))
        return out
    except (OSError, IOError) as exc:
        log.warning("LVM2 volume group at byte %d unreadable: %s", offset, oneline(exc))
        return []
    finally:
        handle.close()


class ExtentMedia:
    """A linear logical volume as :class:`Media`: its segments' image ranges read in LV order."""

    def __init__(self, read: Reader, vmap: VolumeMap, size: int) -> None:
        self._read, self._map, self.size = read, vmap, size

    def read(self, offset: int, size: int) -> bytes:
        size = max(0, min(size, self.size - offset))
        return b"".join(self._read(s, n) for s, n in self._map.ranges(offset, size))

    def close(self) -> None:
        pass  # reads through the image's cached handle


def expand(parts: list, read: Reader, image_size: int) -> list:
    """``parts`` (Partition rows) with each LVM2 physical volume marked ``meta`` and its logical volumes added."""
    out = []
    lvs_rows = []
    for p in parts:
        if p.flags != "alloc" or p.start >= image_size or not is_physical_volume(read, p.start):
            out.append(p)
            continue
        lvs = logical_volumes(read, p.start, min(p.length, image_size - p.start))
        names = ", ".join(lv.name for lv in lvs) or "none readable"
        group = lvs[0].group if lvs else "?"
        out.append(replace(p, flags="meta", layer="lvm-pv", description=f"{p.description}: LVM2 physical volume of group {group} "
                                                        f"(logical volumes: {names})"))
        for n, lv in enumerate(lvs):
            lvs_rows.append(replace(p, index=LV_BASE + 100 * p.index + n, slot=f"lvm:{lv.group}/{lv.name}",
                                    length=lv.size, flags="alloc", volume_system="lvm", parent=p.index,
                                    layer="lvm-lv", extents=lv.extents if lv.extents is not None else (),
                                    description=f"LVM2 logical volume {lv.group}/{lv.name} (id {lv.identifier}) in "
                                                f"volume {p.index}"))
    return out + lvs_rows


def lv_number(index: int) -> int | None:
    """Which logical volume of its group a volume index names, or None for a partition."""
    return (index - LV_BASE) % 100 if LV_BASE <= index < APFS_BASE else None


def open_logical_volume(read: Reader, offset: int, length: int, n: int) -> tuple[Any, VolumeMap]:
    """The n-th logical volume of the group whose physical volume starts at ``offset``, as media, and how its
    bytes map to the image. Read through its segments where the metadata maps them, else through libvslvm
    (striped, thin, RAID ...), whose offsets are then unknown."""
    lvs = lvmmeta.logical_volumes(read, offset)
    if lvs is not None and n < len(lvs) and lvs[n].extents is not None:
        vmap = VolumeMap(lvs[n].extents)
        return ExtentMedia(read, vmap, lvs[n].size), vmap
    try:
        handle, region = _open(read, offset, length)
        lv = handle.get_volume_group().get_logical_volume(n)
    except (OSError, IOError) as exc:
        raise FilesystemError(f"LVM2 logical volume {n} unreadable: {oneline(exc)}") from exc
    return HandleMedia(lv, keep=(handle,)), VolumeMap.none()
