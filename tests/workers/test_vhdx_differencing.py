"""A differencing VHDX: qemu-img writes the parent (a dynamic VHDX) but cannot write a child, so the child is
written here by the layout of Microsoft's VHDX specification (MS-VHDX): file identifier, two headers and two
region tables (CRC-32C), an empty log, the metadata region (file parameters with HasParent, size, disk id,
sector sizes, a parent locator with parent_linkage and relative_path) and a BAT whose changed blocks are
FULLY_PRESENT in the child while every other block is NOT_PRESENT, i.e. read from the parent. libvhdi, not our
code, reads the chain; the oracle is the raw image with the changes applied."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from triage.rules.errors import ImageError
from triage.workers.image import identify, iter_media, open_image
from triage_test_fixtures import virtual
from triage_test_fixtures.checksums import crc32c

MIB = 1 << 20
BLOCK = MIB
pytestmark = pytest.mark.skipif(not virtual.have_qemu_img(), reason="qemu-img not installed")


def _with_crc(buf: bytearray) -> bytes:
    buf[4:8] = b"\0" * 4
    buf[4:8] = struct.pack("<I", crc32c(bytes(buf)))
    return bytes(buf)


def _guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


BAT_GUID = _guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
META_GUID = _guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMS = _guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
DISK_SIZE = _guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
DISK_ID = _guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR = _guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR = _guid("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR = _guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
LOCATOR_TYPE = _guid("B04AEFB7-D19E-4A81-B789-25B8E9445913")


def _data_write_guid(vhdx: bytes) -> bytes:
    """The parent's DataWriteGuid from its current header (the higher sequence number)."""
    heads = [vhdx[o:o + 4096] for o in (64 << 10, 128 << 10)]
    cur = max((h for h in heads if h[:4] == b"head"), key=lambda h: struct.unpack_from("<Q", h, 8)[0])
    return cur[32:48]


def _locator(pairs: dict[str, str]) -> bytes:
    head = LOCATOR_TYPE + struct.pack("<HH", 0, len(pairs))
    table, strings = b"", b""
    base = len(head) + 12 * len(pairs)
    for k, v in pairs.items():
        kb, vb = k.encode("utf-16-le"), v.encode("utf-16-le")
        table += struct.pack("<IIHH", base + len(strings), base + len(strings) + len(kb), len(kb), len(vb))
        strings += kb + vb
    return head + table + strings


def build_differencing_vhdx(raw: Path, work: Path, changes: dict[int, bytes]) -> tuple[Path, Path, bytes]:
    """(child, parent, the media expected through the chain)."""
    work.mkdir(parents=True, exist_ok=True)
    parent = work / "parent.vhdx"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic,block_size=1M",
                    str(raw), str(parent)], check=True, capture_output=True)
    base = raw.read_bytes()
    size = len(base)
    expected = bytearray(base)
    for off, data in changes.items():
        expected[off:off + len(data)] = data

    ident = bytearray(64 << 10)
    ident[:8] = b"vhdxfile"
    ident[8:8 + 22] = "triage-test".encode("utf-16-le")
    headers = []
    for seq in (1, 2):
        h = bytearray(4096)
        h[:4] = b"head"
        struct.pack_into("<Q", h, 8, seq)
        h[16:32] = bytes(range(1, 17))              # FileWriteGuid
        h[32:48] = bytes(range(17, 33))             # DataWriteGuid (the child's own)
        # LogGuid zero: no log to replay
        struct.pack_into("<HHIQ", h, 64, 0, 1, MIB, MIB)  # LogVersion, Version, LogLength, LogOffset
        headers.append(_with_crc(h))
    meta_off, bat_off, data_off = 2 * MIB, 3 * MIB, 4 * MIB
    rt = bytearray(64 << 10)
    rt[:4] = b"regi"
    struct.pack_into("<II", rt, 8, 2, 0)
    rt[16:48] = BAT_GUID + struct.pack("<QII", bat_off, MIB, 1)
    rt[48:80] = META_GUID + struct.pack("<QII", meta_off, MIB, 1)
    region = _with_crc(rt)

    linkage = "{" + str(uuid.UUID(bytes_le=_data_write_guid(parent.read_bytes()))) + "}"
    items = [(FILE_PARAMS, struct.pack("<II", BLOCK, 2), 4),  # HasParent
             (DISK_SIZE, struct.pack("<Q", size), 6),
             (DISK_ID, bytes(range(40, 56)), 6),
             (LOGICAL_SECTOR, struct.pack("<I", 512), 6),
             (PHYSICAL_SECTOR, struct.pack("<I", 512), 6),
             (PARENT_LOCATOR, _locator({"parent_linkage": linkage, "relative_path": ".\\parent.vhdx",
                                         "absolute_win32_path": "\\\\?\\C:\\evidence\\parent.vhdx"}), 4)]
    meta = bytearray(MIB)
    meta[:8] = b"metadata"
    struct.pack_into("<HH", meta, 8, 0, len(items))
    at = 64 << 10
    for i, (guid, body, flags) in enumerate(items):
        meta[32 + 32 * i:64 + 32 * i] = guid + struct.pack("<IIII", at, len(body), flags, 0)
        meta[at:at + len(body)] = body
        at += -(-len(body) // 4096) * 4096

    blocks = -(-size // BLOCK)
    ratio = (1 << 23) * 512 // BLOCK
    bat = bytearray(MIB)
    payload = bytearray()
    for b in sorted({off // BLOCK for off in changes}):
        entry = b + b // ratio
        struct.pack_into("<Q", bat, 8 * entry, 6 | ((data_off + len(payload)) // MIB) << 20)  # FULLY_PRESENT
        payload += expected[b * BLOCK:(b + 1) * BLOCK].ljust(BLOCK, b"\0")
    assert blocks + -(-blocks // ratio) <= MIB // 8
    child = work / "child.vhdx"
    slot = 64 << 10  # identifier, header 1, header 2, region table 1, region table 2: one 64 KiB slot each
    child.write_bytes(bytes(ident) + headers[0].ljust(slot, b"\0") + headers[1].ljust(slot, b"\0") + region + region
                      + bytes(MIB - 5 * slot)
                      + bytes(MIB) + bytes(meta) + bytes(bat) + bytes(payload))
    return child, parent, bytes(expected)


def _md5(ref) -> str:
    h = hashlib.md5()
    for chunk in iter_media(ref, 4 * MIB):
        h.update(chunk)
    return h.hexdigest()


@pytest.mark.slow
def test_a_differencing_vhdx_reads_its_own_blocks_and_the_rest_from_its_parent(mbr_image, tmp_path):
    changes = {4096: b"C" * 512, (3 << 20) + 1024: b"D" * 512}
    child, parent, expected = build_differencing_vhdx(mbr_image.raw, tmp_path, changes)
    ref = identify(child)
    assert ref.format == "vhdx" and ref.segments == (str(child), str(parent))
    assert ref.size == len(expected)
    assert _md5(ref) == hashlib.md5(expected).hexdigest() != mbr_image.md5
    assert open_image(ref).read(4096 - 16, 32) == expected[4096 - 16:4096 + 16]
    other = tmp_path / "other"  # a VHDX of the same disk made separately is another disk: refused
    other.mkdir()
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", str(mbr_image.raw), str(other / "p.vhdx")],
                   check=True, capture_output=True)
    (other / "p.vhdx").replace(parent)
    with pytest.raises(ImageError, match="not its parent"):
        identify(child)
