"""Volume systems (MBR incl. extended/logical partitions, GPT, ...) and filesystem detection.

Every partition TSK lists is reported, allocated or not, the way `mmls` shows
them; a bare filesystem with no partition table becomes one whole-image volume.
Filesystems are opened read-only through TSK and cached per worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import pytsk3

from triage.rules.errors import FilesystemError, ImageError, VolumeError
from triage.rules.registry import Registry
from triage.workers import handles
from triage.workers.encryption import detect, layer_of, sniff_volume
from triage.workers import apfs, lvm, vss
from triage.workers.formats import PyImg
from triage.workers.unlock import key_for, open_volume
from triage.workers.image import TSK_ERRORS, _oneline, open_image
from triage.workers.refs import ImageRef, VolumeRef
from triage.workers.volmap import VolumeMap

#: what a volumes.parquet row is, outermost first: the disk itself (no partition table), a partition-table
#: entry, an LVM2 physical volume / logical volume, an encrypted volume (its filesystem is read from the plaintext)
LAYERS = ("disk", "partition", "lvm-pv", "lvm-lv", "apfs-container", "apfs-volume", "luks", "bitlocker", "filevault",
          "encrypted", "vss")
#: layers whose filesystem is plaintext decrypted from the image: no image offset inside them
ENCRYPTED_LAYERS = ("luks", "bitlocker", "filevault", "encrypted")

FS_TYPE_NAMES = {
    getattr(pytsk3, n): n.removeprefix("TSK_FS_TYPE_")
    for n in dir(pytsk3)
    if n.startswith("TSK_FS_TYPE_") and not n.endswith(("_DETECT", "ENUM")) and isinstance(getattr(pytsk3, n), int)
}
FS_TYPE_NAMES.update({pytsk3.TSK_FS_TYPE_EXT2: "Ext2", pytsk3.TSK_FS_TYPE_EXT3: "Ext3", pytsk3.TSK_FS_TYPE_EXT4: "Ext4",
                      pytsk3.TSK_FS_TYPE_EXFAT: "exFAT", pytsk3.TSK_FS_TYPE_ISO9660: "ISO9660", pytsk3.TSK_FS_TYPE_HFS: "HFS+"})


@dataclass(frozen=True)
class Partition:
    """One row of the volume table (what `mmls` prints), in bytes."""

    index: int
    slot: str
    start: int
    length: int
    flags: str
    description: str
    volume_system: str
    parent: int | None = None   # index of the row this volume lies in (an LV's physical volume); None at the top
    layer: str = "partition"    # one of LAYERS
    extents: tuple[tuple[int, int], ...] | None = None  # image ranges in volume order when not [start, start+length)

    def __post_init__(self) -> None:
        if self.extents is not None:  # a checkpoint's JSON gives lists
            object.__setattr__(self, "extents", tuple((int(s), int(n)) for s, n in self.extents))

    @property
    def walkable(self) -> bool:
        return self.flags == "alloc"

    def image_ranges(self, size: int) -> list[tuple[int, int]]:
        """The image byte ranges this volume occupies, clipped to an image of ``size`` bytes."""
        spans = self.extents if self.extents is not None else ((self.start, self.length),)
        return [(s, min(s + n, size) - s) for s, n in spans if s < min(s + n, size)]


def _vs_name(vs: pytsk3.Volume_Info) -> str:
    names = {getattr(pytsk3, n): n.removeprefix("TSK_VS_TYPE_").lower()
             for n in dir(pytsk3) if n.startswith("TSK_VS_TYPE_") and isinstance(getattr(pytsk3, n), int)}
    return names.get(int(vs.info.vstype), str(int(vs.info.vstype)))


def _flags(flags: int) -> str:
    if flags & pytsk3.TSK_VS_PART_FLAG_ALLOC:
        return "alloc"
    if flags & pytsk3.TSK_VS_PART_FLAG_META:
        return "meta"
    return "unalloc"


class VolumeSystem:
    """Base of every volume system: how an image is divided into volumes.

    ``partitions`` returns the volumes it finds on the image, or None when the
    image is not divided this way; ``list_partitions`` tries each registered one in
    ``PRIORITY`` order and never asks which it holds. A new one (LVM, APFS
    containers) is one more registered class.
    """

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    PRIORITY: ClassVar[int] = 10

    def partitions(self, ref: ImageRef, img: pytsk3.Img_Info) -> list[Partition] | None:
        raise NotImplementedError


#: every volume system, by name, tried in PRIORITY order by list_partitions
VOLUME_SYSTEMS: Registry[VolumeSystem] = Registry("volume system", unknown=VolumeError)


def volume_system(cls: type) -> type:
    return VOLUME_SYSTEMS.register(instance=True)(cls)


@volume_system
class TskVolumeSystem(VolumeSystem):
    NAME = "tsk"
    DESCRIPTION = "partition tables TSK reads: DOS/MBR incl. extended and logical, GPT, BSD, Sun, Mac"

    def partitions(self, ref: ImageRef, img: pytsk3.Img_Info) -> list[Partition] | None:
        try:
            vs = pytsk3.Volume_Info(img)
        except TSK_ERRORS:
            return None
        block = vs.info.block_size
        vs_type = _vs_name(vs)
        parts = []
        for p in vs:
            flags = _flags(int(p.flags))
            if flags == "alloc":
                slot = f"{p.slot_num:03d}" if p.table_num < 0 else f"{p.table_num:03d}:{p.slot_num:03d}"
            else:
                slot = "Meta" if flags == "meta" else "-------"
            desc = p.desc.decode("utf-8", "backslashreplace") if isinstance(p.desc, bytes) else str(p.desc)
            parts.append(Partition(int(p.addr), slot, int(p.start) * block, int(p.len) * block, flags, desc, vs_type))
        return parts


@volume_system
class BareFilesystem(VolumeSystem):
    NAME = "none"
    DESCRIPTION = "no partition table: a filesystem starting at byte 0 is one whole-image volume"
    PRIORITY = 50

    def partitions(self, ref: ImageRef, img: pytsk3.Img_Info) -> list[Partition] | None:
        try:
            fs = pytsk3.FS_Info(img, offset=0)
        except TSK_ERRORS:
            return None
        desc = FS_TYPE_NAMES.get(int(fs.info.ftype), "filesystem")
        return [Partition(0, "whole image", 0, ref.size, "alloc", f"{desc} (no partition table)", "none",
                          layer="disk")]


@volume_system
class BarePhysicalVolume(VolumeSystem):
    NAME = "lvm"
    DESCRIPTION = "no partition table: an LVM2 physical volume, its logical volumes listed after it"
    PRIORITY = 40

    def partitions(self, ref: ImageRef, img: pytsk3.Img_Info) -> list[Partition] | None:
        if not lvm.is_physical_volume(img.read, 0):
            return None
        return [Partition(0, "whole image", 0, ref.size, "alloc", "LVM2 physical volume (no partition table)", "none",
                          layer="lvm-pv")]


@volume_system
class BareApfsContainer(VolumeSystem):
    NAME = "apfs"
    DESCRIPTION = "no partition table: an APFS container, its volumes listed after it"
    PRIORITY = 45

    def partitions(self, ref: ImageRef, img: pytsk3.Img_Info) -> list[Partition] | None:
        if not apfs.is_container(img.read, 0):
            return None
        return [Partition(0, "whole image", 0, ref.size, "alloc", "APFS container (no partition table)", "none",
                          layer="apfs-container")]


@volume_system
class BareEncrypted(VolumeSystem):
    NAME = "encrypted"
    DESCRIPTION = "no partition table: an encrypted volume with a known header (LUKS, BitLocker) is one volume"
    PRIORITY = 60

    def partitions(self, ref: ImageRef, img: pytsk3.Img_Info) -> list[Partition] | None:
        # a header only: a whole file of random bytes is more likely not an image at all, and says so
        # ("not a device image, or encrypted/wiped"); the entropy test is for partitions of a real table
        enc = sniff_volume(img.read, 0, ref.size)
        if enc is None:
            return None
        return [Partition(0, "whole image", 0, ref.size, "alloc", f"{enc.kind} encrypted volume (no partition "
                          "table)", "none", layer=layer_of(enc))]


def list_partitions(ref: ImageRef) -> list[Partition]:
    """The image's partitions, or one whole-image volume when there is no volume system.

    Raises ImageError when no volume system, filesystem or encrypted volume is
    recognised: the file is most likely not a device image at all.
    """
    img = open_image(ref)
    for vs in sorted(VOLUME_SYSTEMS, key=lambda v: (v.PRIORITY, v.NAME)):
        parts = vs.partitions(ref, img)
        if parts is not None:
            parts = lvm.expand([_encrypted_layer(p, img, ref.size) for p in parts], img.read, ref.size)
            parts = lvm.expand_unlocked(parts, img.read, ref.path, ref.size)  # LVM on LUKS, given the key
            return apfs.expand(parts, img.read, ref.size)
    raise ImageError(f"{ref.path}: no partition table or filesystem recognised ({ref.size} bytes): not a device "
                     "image, or encrypted/wiped")


def _encrypted_layer(p: Partition, img: pytsk3.Img_Info, size: int) -> Partition:
    """A partition whose first sectors announce LUKS/BitLocker/FileVault is that layer (a 4 KiB read)."""
    if p.flags != "alloc" or p.layer != "partition" or p.start >= size:
        return p
    enc = sniff_volume(img.read, p.start, min(p.length, size - p.start))
    return p if enc is None else replace(p, layer=layer_of(enc))


def volume_map(vol: VolumeRef, fs: pytsk3.FS_Info) -> VolumeMap:
    """How byte offsets in ``fs`` (opened by ``open_fs(vol)``) become image offsets."""
    inner = getattr(fs, "map", None)
    return inner if isinstance(inner, VolumeMap) else VolumeMap.linear(vol.offset, vol.length)


def open_fs(vol: VolumeRef) -> pytsk3.FS_Info:
    """The TSK filesystem of ``vol``, opened once per worker thread (bounded LRU, see ``handles``)."""

    def opener() -> pytsk3.FS_Info:
        img = open_image(vol.image)
        if vol.offset >= vol.image.size:
            raise FilesystemError(f"starts at byte {vol.offset}, past the end of the image "
                                  f"({vol.image.size} bytes): truncated image?")
        if vss.store_number(vol.index) is not None:  # a shadow copy: read through libvshadow (workers/vss.py)
            return vss.open_snapshot(vol)
        if apfs.volume_number(vol.index) is not None:  # read by libfsapfs (pytsk3 has no APFS pool layer)
            return apfs.ApfsFS(img.read, vol.offset, vol.image.size - vol.offset, apfs.volume_number(vol.index))
        n = lvm.lv_number(vol.index)
        if n is not None:
            media, vmap = lvm.open_lv(vol.image.path, img.read, vol.offset, vol.image.size - vol.offset, vol.index)
            return _open_inner(PyImg(media), f"LVM2 logical volume {n}", vmap)
        length = min(vol.length, vol.image.size - vol.offset)
        # a header first: a BitLocker To Go volume is also a valid FAT32 showing only its reader program
        enc = sniff_volume(img.read, vol.offset, length)
        if enc is None:
            try:
                return pytsk3.FS_Info(img, offset=vol.offset)
            except TSK_ERRORS as exc:
                enc = detect(img.read, vol.offset, length)  # now the entropy test too
                if enc is None:
                    raise FilesystemError(f"no filesystem recognised ({_oneline(exc)})") from exc
        key = key_for(vol.image.path, vol.index)
        if key is None or enc.kind == "unknown":
            raise FilesystemError(enc.status())
        return _open_unlocked(enc, img, vol, length, key)

    return handles.filesystems().get(vol, opener)


class InnerFS(pytsk3.FS_Info):
    """The filesystem inside a volume read through a library (an unlocked volume, an LVM logical volume);
    ``release`` (by the handle cache) closes that library's handle; ``map`` turns its offsets into image ones."""

    def __init__(self, img: PyImg, vmap: VolumeMap) -> None:
        super().__init__(img, offset=0)
        self._img = img
        self.map = vmap

    @property
    def media(self) -> PyImg:
        """The volume's own bytes (plaintext, an LV's segments), for what reads it beside TSK (shadow copies)."""
        return self._img

    def release(self) -> None:
        self._img.release()


def _open_unlocked(enc, img: pytsk3.Img_Info, vol: VolumeRef, length: int, key) -> pytsk3.FS_Info:
    # the plaintext has no image offset: the image holds only its ciphertext
    return _open_inner(PyImg(open_volume(enc, img.read, vol.offset, length, key)), f"{enc.kind} volume unlocked",
                       VolumeMap.none())


def _open_inner(inner: PyImg, what: str, vmap: VolumeMap) -> pytsk3.FS_Info:
    try:
        return InnerFS(inner, vmap)
    except TSK_ERRORS as exc:
        inner.release()
        raise FilesystemError(f"{what}: no filesystem recognised inside ({_oneline(exc)})") from exc


def fs_type_name(fs: pytsk3.FS_Info) -> str:
    return FS_TYPE_NAMES.get(int(fs.info.ftype), str(int(fs.info.ftype)))
