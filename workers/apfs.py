"""APFS containers: recognised and their volumes listed, so a Mac's disk is never "no filesystem recognised".

TSK reads APFS only through its pool layer, which pytsk3 does not expose, and a
walk through libfsapfs would be a second filesystem backend (walk, content,
allocated runs) beside TSK's; until it exists, each APFS volume is a row of its
own (``layer`` ``apfs-volume``, ``parent`` the container's row, slot
``apfs:NAME``) whose status says it was listed, not walked, so the device counts
as partly triaged (exit code 4) instead of passing for empty. The container's row
is marked ``meta`` (layer ``apfs-container``), like an LVM physical volume.
Volume names, UUIDs, sizes and whether a volume is encrypted come from
libfsapfs; the container superblock (``NXSB`` at byte 32) is the signature.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from triage.workers.formats import RegionFile, oneline

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


def _volumes(read: Reader, offset: int, length: int) -> list[tuple[str, str, int, bool]]:
    import pyfsapfs

    c = pyfsapfs.container()
    try:
        c.open_file_object(RegionFile(read, offset, length))
    except (OSError, IOError) as exc:
        log.warning("APFS superblock at byte %d but no container readable: %s", offset, oneline(exc))
        return []
    try:
        out = []
        for i in range(min(c.number_of_volumes, MAX_VOLUMES)):
            v = c.get_volume(i)
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
                           description=f"{p.description}: APFS container (volumes: {names})"))
        for n, (name, ident, size, locked) in enumerate(vols):
            added.append(replace(p, index=APFS_BASE + 100 * p.index + n, slot=f"apfs:{name}", length=size,
                                 flags="alloc", volume_system="apfs", parent=p.index, layer="apfs-volume",
                                 extents=(), description=f"APFS volume {name} (id {ident}"
                                 + (", encrypted" if locked else "") + f") in volume {p.index}"))
    return out + added


def volume_number(index: int) -> int | None:
    """Which volume of its container an index names, or None when it is not an APFS volume's."""
    return (index - APFS_BASE) % 100 if index >= APFS_BASE else None


def status(read: Reader, offset: int, length: int, n: int) -> str:
    """Why the n-th volume of the container at ``offset`` was not walked (an encrypted one says so first,
    so it counts towards the device's rank like any locked volume)."""
    vols = _volumes(read, offset, length)
    why = ("listed, not walked: APFS is read through TSK's pool layer, which pytsk3 does not expose, "
           "and a libfsapfs walker is not written yet")
    if n < len(vols) and vols[n][3]:
        return f"encrypted: APFS volume {vols[n][0]} (FileVault, id {vols[n][1]}); {why}"
    return f"APFS volume {vols[n][0] if n < len(vols) else n}: {why}"
