"""Volume Shadow Copies: each snapshot of an NTFS volume walked as a volume of its own.

Windows keeps earlier states of an NTFS volume as copy-on-write stores (VSS): the old
contents of every 16 KiB block changed since a snapshot, in files under System Volume
Information, catalogued from a header at byte 0x1e00 of the volume. A file deleted or
rewritten since then is still whole there. libvshadow (pyvshadow) reads a store as the
volume was when the snapshot was taken; TSK walks that like any other volume.

In ``volumes.parquet`` each snapshot is a row of its own: layer ``vss``, slot ``vss:N``,
``parent`` the NTFS volume's row, ``volume_system`` ``vss``, its creation time (UTC) and
identifiers in the description. N counts from 1, oldest first: libvshadow orders the stores
by creation time, and ``vss:1`` is its store 0. A snapshot's index is ``VSS_BASE + 100 *
(parent row index) + (N - 1)``, so a worker knows which store of which volume a volume
description means without any state (as LVM's ``LV_BASE`` does). Its ``start`` and ``length``
are the parent's (the snapshot covers the same bytes); its ``extents`` are ``[]``: a
snapshot's blocks come partly from the store and partly from the live volume, so its files
have no single image offset (``offset`` null), and it is never carved (the live volume's
free space is carved already; the store's data blocks lie in a live, allocated file).

Rows are marked ``source = vss:N`` and the ones that merely repeat the live volume (same
inode, attribute, size and hashes) are dropped when the results are merged
(:func:`triage.merge.fold_snapshots`), leaving what was deleted or changed since.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from triage.rules.errors import FilesystemError
from triage.workers.formats import HandleMedia, PyImg, RegionFile, oneline
from triage.workers.refs import VolumeRef
from triage.workers.volmap import VolumeMap

__all__ = ["DIFF_AREA_SUFFIX", "LAYER", "VSS_BASE", "has_stores", "list_snapshots", "open_snapshot", "parent_of",
           "snapshot_index", "source", "store_number"]

if TYPE_CHECKING:
    import pytsk3

    from triage.workers.volumes import Partition

log = logging.getLogger(__name__)

Reader = Callable[[int, int], bytes]
#: a snapshot's volume index: VSS_BASE + 100 * (its NTFS volume's row index) + store number (from 0); above
#: every LVM (LV_BASE) and APFS (APFS_BASE) index, and still an int32 for any parent below ~1.4 million
VSS_BASE = 2_000_000_000
MAX_STORES = 100  # Windows keeps at most 64
HEADER_OFFSET = 0x1E00
#: the VSS identifier GUID {3808876b-c176-4e48-b7ae-04046e6cc752} as stored on disk
IDENTIFIER = bytes.fromhex("6b87083876c1484eb7ae04046e6cc752")
LAYER = "vss"
#: the names of VSS's own files (the catalog, each store's diff area) end so: their content as a snapshot
#: shows it is not the volume's data (libvshadow zero-fills them), so their rows are left out
DIFF_AREA_SUFFIX = "{3808876b-c176-4e48-b7ae-04046e6cc752}"
FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)


def has_stores(read: Reader, size: int) -> bool:
    """A VSS volume header with a catalog at 0x1e00 of the volume (a 64-byte read). Catalog offset 0 means
    shadow copies are enabled but none is stored."""
    if size < HEADER_OFFSET + 64:
        return False
    try:
        head = read(HEADER_OFFSET, 64)
    except (OSError, RuntimeError):
        return False
    return head[:16] == IDENTIFIER and int.from_bytes(head[48:56], "little") != 0


def snapshot_index(parent: int, n: int) -> int:
    """The volume index of store ``n`` (from 0) of volume ``parent``."""
    return VSS_BASE + 100 * parent + n


def store_number(index: int) -> int | None:
    """Which store (from 0) a volume index names, or None when it is not a snapshot."""
    return (index - VSS_BASE) % 100 if index >= VSS_BASE else None


def parent_of(index: int) -> int:
    return (index - VSS_BASE) // 100


def source(index: int) -> str:
    """The files.parquet ``source`` of a snapshot's rows: ``vss:N``, N from 1."""
    n = store_number(index)
    assert n is not None
    return f"vss:{n + 1}"


def _volume_bytes(vol: VolumeRef) -> tuple[Reader, int]:
    """A reader of the volume's own bytes (a partition, an LVM logical volume, an unlocked volume's plaintext)."""
    from triage.workers.image import open_image
    from triage.workers.volumes import InnerFS, open_fs

    fs = open_fs(vol)
    if isinstance(fs, InnerFS):
        return fs.media.read, int(fs.media.get_size())
    img = open_image(vol.image)
    return (lambda off, n: img.read(vol.offset + off, n)), max(0, min(vol.length, vol.image.size - vol.offset))


def _open_volume(read: Reader, size: int) -> Any:
    import pyvshadow

    volume = pyvshadow.volume()
    volume.open_file_object(RegionFile(read, 0, size))
    return volume


def _utc(filetime: int) -> str:
    when = FILETIME_EPOCH + dt.timedelta(microseconds=filetime // 10)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def list_snapshots(vol: VolumeRef) -> list[Partition]:
    """One volume-table row per shadow copy of the NTFS volume ``vol``, oldest first; none without a VSS header.

    A catalog libvshadow cannot read gives one row saying so: its walk fails with the reason, so the
    device's summary names the volume, and the live volume's own results are untouched."""
    from triage.workers.volumes import Partition

    read, size = _volume_bytes(vol)
    if not has_stores(read, size):
        return []

    def row(n: int, slot: str, description: str) -> Partition:
        return Partition(snapshot_index(vol.index, n), slot, vol.offset, vol.length, "alloc", description, "vss",
                         parent=vol.index, layer=LAYER, extents=())

    try:
        volume = _open_volume(read, size)
    except (OSError, IOError) as exc:
        return [row(0, "vss", f"Volume Shadow Copies of volume {vol.index}: store catalog unreadable "
                              f"({oneline(exc)})")]
    try:
        rows = []
        for n in range(min(volume.number_of_stores, MAX_STORES)):
            try:
                s = volume.get_store(n)
                desc = (f"Volume Shadow Copy {n + 1} of volume {vol.index}, created {_utc(s.get_creation_time_as_integer())}"
                        f" (store {s.identifier}, shadow copy {s.copy_identifier}, set {s.copy_set_identifier})")
            except (OSError, IOError) as exc:
                desc = f"Volume Shadow Copy {n + 1} of volume {vol.index}: store unreadable ({oneline(exc)})"
            rows.append(row(n, f"vss:{n + 1}", desc))
        log.info("volume %d at byte %d: %d shadow copies", vol.index, vol.offset, len(rows))
        return rows
    finally:
        volume.close()


class _StoreMedia(HandleMedia):
    """A store as media that remembers the last read error: TSK reports a failed read only as "cannot
    determine file system type", and the examiner needs libvshadow's reason (a damaged block list)."""

    error: str | None = None

    def read(self, offset: int, size: int) -> bytes:
        try:
            return super().read(offset, size)
        except (OSError, IOError) as exc:
            self.error = oneline(exc)
            raise


def open_snapshot(vol: VolumeRef) -> pytsk3.FS_Info:
    """The filesystem of the shadow copy a snapshot's volume description names, read through libvshadow
    over its parent volume's bytes (opened read-only like every handle); FilesystemError says why not."""
    from triage.workers.volumes import _open_inner

    n, parent = store_number(vol.index), parent_of(vol.index)
    assert n is not None
    what = f"Volume Shadow Copy {n + 1} of volume {parent}"
    read, size = _volume_bytes(VolumeRef(vol.image, parent, vol.offset, vol.length))
    try:
        volume = _open_volume(read, size)
    except (OSError, IOError) as exc:
        raise FilesystemError(f"Volume Shadow Copies of volume {parent}: store catalog unreadable: "
                              f"{oneline(exc)}") from exc
    if n >= volume.number_of_stores:
        volume.close()
        raise FilesystemError(f"{what}: the volume holds only {volume.number_of_stores} shadow copies")
    try:
        media = _StoreMedia(volume.get_store(n), keep=(volume,))
    except (OSError, IOError) as exc:
        volume.close()
        raise FilesystemError(f"{what}: store unreadable: {oneline(exc)}") from exc
    try:
        return _open_inner(PyImg(media), what, VolumeMap.none())
    except FilesystemError as exc:
        if media.error is None:
            raise
        raise FilesystemError(f"{what}: store unreadable: {media.error}") from exc
