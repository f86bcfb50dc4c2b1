"""Recognising containers: the format registry, segments, virtual disks, unsupported ones, bad paths."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from triage.rules.errors import ImageError, UnsupportedFormatError
from triage.rules.registry import DuplicateNameError
from triage.workers.formats import FORMATS, ImageFormat, image_format
from triage.workers.formats.raw import SegmentedFile
from triage.workers.image import identify, iter_media, open_image
from triage_test_fixtures import virtual


def test_split_raw_lists_every_segment(tmp_path):
    for i, data in enumerate([b"a" * 1000, b"b" * 1000, b"c" * 10], start=1):
        (tmp_path / f"disk.{i:03d}").write_bytes(data)
    ref = identify(tmp_path / "disk.001")
    assert ref.format == "splitraw"
    assert [p.rsplit(".", 1)[1] for p in ref.segments] == ["001", "002", "003"]
    assert ref.size == 2010
    assert b"".join(bytes(c) for c in iter_media(ref, chunk=64)) == b"a" * 1000 + b"b" * 1000 + b"c" * 10


def test_lone_numbered_file_is_plain_raw(tmp_path):
    (tmp_path / "disk.001").write_bytes(b"x" * 512)
    assert identify(tmp_path / "disk.001").format == "raw"


# ---------------------------------------------------------------- the registry


def test_every_format_is_registered_once_by_name():
    assert {"raw", "splitraw", "ewf", "vmdk", "vhd", "vhdx", "qcow", "dmg"} <= set(FORMATS.names())
    for name, fmt in FORMATS.items():
        assert fmt.NAME == name and fmt.DESCRIPTION


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(ImageError, match=r"unknown image format 'nope'; known: .*ewf.*qcow.*raw.*vmdk"):
        FORMATS.get("nope")


def test_a_duplicate_format_is_refused():
    with pytest.raises(DuplicateNameError, match="image format 'raw' registered twice"):
        @image_format
        class Raw2(ImageFormat):
            NAME = "raw"
            DESCRIPTION = "a second raw"


def test_identify_knows_no_format_by_name(tmp_path):
    """A new format is one class: identify, the TSK image and the media stream use it with no edit elsewhere."""

    class XorMedia:
        def __init__(self, path: str) -> None:
            self._f = SegmentedFile([path])
            self.size = self._f.size - 8

        def read(self, offset: int, size: int) -> bytes:
            return bytes(b ^ 0x5A for b in self._f.read(8 + offset, min(size, self.size - offset)))

        def close(self) -> None:
            self._f.close()

    @image_format
    class XorFormat(ImageFormat):
        NAME = "test-xor"
        DESCRIPTION = "test container: a header, then every byte xor 0x5a"
        PRIORITY = 5

        def segments(self, path, head, tail):
            return [str(path)] if head.startswith(b"XORIMG01") else None

        def open_media(self, ref):
            return XorMedia(ref.path)

    try:
        raw = Path(__file__).read_bytes() * 3
        p = tmp_path / "disk.xor"
        p.write_bytes(b"XORIMG01" + bytes(b ^ 0x5A for b in raw))
        ref = identify(p)
        assert (ref.format, ref.size, ref.segments) == ("test-xor", len(raw), (str(p),))
        assert b"".join(bytes(c) for c in iter_media(ref, chunk=1000)) == raw
        assert open_image(ref).read(100, 50) == raw[100:150]
    finally:
        FORMATS._items.pop("test-xor", None)


# ---------------------------------------------------------------- unsupported and broken containers


@pytest.mark.parametrize("where,data,name", [
    ("tail", b"koly" + b"\x00" * 508, "DMG"),
    ("head", b"LVF\x09\x0d\x0a\xff\x00", "L01"),
    ("head", b"\x00" * 0x40 + b"\x7f\x10\xda\xbe", "VDI"),
    ("head", b"AFF10\r\n\x00", "AFF"),
])
def test_unsupported_containers_name_the_format(tmp_path, where, data, name):
    p = tmp_path / "x.img"
    p.write_bytes(data + b"\x01" * 4096 if where == "head" else b"\x01" * 4096 + data)
    with pytest.raises(UnsupportedFormatError, match=f"x.img: unsupported format: .*{name}") as info:
        identify(p)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("head,name", [(b"QFI\xfb", "QCOW"), (b"KDMV", "VMDK"), (b"vhdxfile", "VHDX"),
                                       (b"conectix", "VHD")])
def test_a_broken_virtual_disk_is_one_line_naming_it(tmp_path, head, name):
    p = tmp_path / "x.img"
    p.write_bytes(head + b"\x00" * 4096)
    with pytest.raises(ImageError, match=f"x.img: .*{name}.* cannot be opened: ") as info:
        identify(p)
    assert not isinstance(info.value, UnsupportedFormatError)
    assert "\n" not in str(info.value) and "libqcow_" not in str(info.value)


def test_missing_empty_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        identify(tmp_path / "nope.dd")
    (tmp_path / "empty.E01").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        identify(tmp_path / "empty.E01")
    assert identify(tmp_path).format == "folder"  # a directory is a folder source now (issue 15)


def test_truncated_ewf_header_is_an_image_error(tmp_path):
    p = tmp_path / "cut.E01"
    p.write_bytes(b"EVF\x09\x0d\x0a\xff\x00" + b"\x01" * 100)
    with pytest.raises(ImageError, match="cut.E01"):
        identify(p)


# ---------------------------------------------------------------- virtual disks made by qemu-img

needs_qemu = pytest.mark.skipif(not virtual.have_qemu_img(), reason="qemu-img not installed")


def _md5(ref) -> str:
    h = hashlib.md5()
    for c in iter_media(ref, chunk=1 << 20):
        h.update(c)
    return h.hexdigest()


@needs_qemu
@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(virtual.VARIANTS))
def test_virtual_disk_media_is_the_raw_image(variant, mbr_image, tmp_path):
    img = virtual.build_virtual(mbr_image, tmp_path, variant)
    ref = identify(img.path)
    assert ref.format == virtual.FORMAT_NAME[virtual.VARIANTS[variant][0]]
    assert sorted(ref.segments) == sorted(str(s) for s in img.segments)  # descriptor and every extent
    assert ref.segments[0] == str(img.path)
    assert ref.size == mbr_image.raw.stat().st_size
    assert _md5(ref) == mbr_image.md5
    raw = mbr_image.raw.read_bytes()
    assert open_image(ref).read(1 << 20, 70000) == raw[1 << 20:(1 << 20) + 70000]


@needs_qemu
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["qcow2", "vmdk"])
def test_a_child_reads_through_its_parent_beside_it(fmt, mbr_image, tmp_path):
    img = virtual.build_backed(mbr_image, tmp_path, fmt)
    ref = identify(img.path)
    assert ref.segments == (str(tmp_path / f"child.{fmt}"), str(tmp_path / f"base.{fmt}"))
    assert _md5(ref) == mbr_image.md5
    (tmp_path / f"base.{fmt}").rename(tmp_path / "elsewhere")
    with pytest.raises(ImageError, match=f"child.{fmt}: its parent image 'base.{fmt}' is not beside it"):
        identify(img.path)


@needs_qemu
@pytest.mark.slow
def test_a_missing_vmdk_extent_is_named(mbr_image, tmp_path):
    img = virtual.build_virtual(mbr_image, tmp_path, "vmdk-twoGbMaxExtentSparse")
    extent = next(s for s in img.segments if s != img.path)
    extent.unlink()
    with pytest.raises(ImageError, match=f"extent file\\(s\\) missing: .*{extent.name}"):
        identify(img.path)


@needs_qemu
@pytest.mark.slow
def test_container_files_are_hashed_as_they_lie(mbr_image, tmp_path):
    import subprocess

    from triage.workers.containers import hash_container_files

    img = virtual.build_virtual(mbr_image, tmp_path, "vmdk-twoGbMaxExtentSparse")
    ref = identify(img.path)
    got = hash_container_files(ref)
    assert [d.path for d in got] == list(ref.segments) and len(got) == 2
    for d in got:
        md5sum = subprocess.run(["md5sum", d.path], capture_output=True, text=True, check=True).stdout.split()[0]
        assert (d.md5, d.size) == (md5sum, Path(d.path).stat().st_size)
    assert all(d.md5 != mbr_image.md5 for d in got)  # the files are not the media
    assert hash_container_files(identify(mbr_image.path)) == ()


@needs_qemu
@pytest.mark.slow
def test_a_differencing_vhd_reads_its_own_sectors_and_the_rest_from_its_parent(mbr_image, tmp_path):
    changes = {4096: b"C" * 512, 3 << 20: b"D" * 512}
    img, expected = virtual.build_differencing_vhd(mbr_image, tmp_path, changes)
    ref = identify(img.path)
    assert ref.format == "vhd" and ref.segments == (str(tmp_path / "child.vhd"), str(tmp_path / "parent.vhd"))
    assert _md5(ref) == hashlib.md5(expected).hexdigest() != mbr_image.md5
    assert open_image(ref).read(4096 - 16, 32) == expected[4096 - 16:4096 + 16]
    # a parent of another disk (a different unique id) is refused, not read through
    other = tmp_path / "other"
    other.mkdir()
    virtual.build_virtual(mbr_image, other, "vhd-dynamic")
    (other / (mbr_image.raw.stem + ".vhd")).replace(tmp_path / "parent.vhd")
    with pytest.raises(ImageError, match="child.vhd: parent parent.vhd has identifier .* not its parent"):
        identify(img.path)
