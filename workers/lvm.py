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


# -- LVM inside an unlocked encrypted volume (LVM on LUKS: what Linux installers make with full-disk encryption)

ENCRYPTED_CONTAINERS = ("luks", "bitlocker")


class _Nested:
    """Media read through another media (an LV inside decrypted plaintext); closing it closes both."""

    def __init__(self, inner: Any, outer: Any) -> None:
        self._inner, self._outer, self.size = inner, outer, inner.size

    def read(self, offset: int, size: int) -> bytes:
        return self._inner.read(offset, size)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._outer.close()


def expand_unlocked(parts: list, read: Reader, image_path: str, image_size: int) -> list:
    """``parts`` with each encrypted volume that a key unlocks and that holds an LVM2 physical volume marked
    ``meta`` and its logical volumes added (their bytes are plaintext: no image extents, offsets null)."""
    from triage.workers.encryption import sniff_volume
    from triage.workers.unlock import key_for, open_volume

    out, rows = [], []
    for p in parts:
        wanted = p.flags == "alloc" and p.layer in ENCRYPTED_CONTAINERS and p.start < image_size
        key = key_for(image_path, p.index) if wanted else None
        length = min(p.length, image_size - p.start)
        enc = sniff_volume(read, p.start, length) if key is not None else None
        if enc is None:
            out.append(p)
            continue
        try:
            plain = open_volume(enc, read, p.start, length, key)
        except FilesystemError:
            out.append(p)  # a wrong key: the walk of this row says so
            continue
        try:
            lvs = logical_volumes(plain.read, 0, plain.size) if is_physical_volume(plain.read, 0) else None
        finally:
            plain.close()
        if lvs is None:
            out.append(p)  # a filesystem straight inside: walked as the row itself
            continue
        names = ", ".join(lv.name for lv in lvs) or "none readable"
        group = lvs[0].group if lvs else "?"
        out.append(replace(p, flags="meta", description=f"{p.description}: {enc.kind} unlocked, holding the LVM2 "
                                                        f"physical volume of group {group} (logical volumes: {names})"))
        for n, lv in enumerate(lvs):
            rows.append(replace(p, index=LV_BASE + 100 * p.index + n, slot=f"lvm:{lv.group}/{lv.name}",
                                length=lv.size, flags="alloc", volume_system="lvm", parent=p.index, layer="lvm-lv",
                                extents=(), description=f"LVM2 logical volume {lv.group}/{lv.name} (id "
                                f"{lv.identifier}) in {enc.kind} volume {p.index} (plaintext: no image offsets)"))
    return out + rows


def open_lv(image_path: str, read: Reader, offset: int, length: int, index: int) -> tuple[Any, VolumeMap]:
    """The logical volume a volume index names, whether its physical volume lies in the image or in the
    plaintext of an encrypted volume there (unlocked with the key given for that volume's row)."""
    from triage.workers.encryption import sniff_volume
    from triage.workers.unlock import key_for, open_volume

    n = lv_number(index)
    assert n is not None
    enc = sniff_volume(read, offset, length)
    if enc is None:
        return open_logical_volume(read, offset, length, n)
    key = key_for(image_path, (index - LV_BASE) // 100)
    if key is None:
        raise FilesystemError(enc.status())
    plain = open_volume(enc, read, offset, length, key)
    try:
        media, _ = open_logical_volume(plain.read, 0, plain.size, n)
    except BaseException:
        plain.close()
        raise
    return _Nested(media, plain), VolumeMap.none()  # plaintext: no image offset
