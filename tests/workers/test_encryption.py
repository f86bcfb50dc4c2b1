"""Encrypted partitions: recognised by header (LUKS1/2, BitLocker, FileVault 2) or entropy, unlocked with a key."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from triage.rules.errors import FilesystemError, InputError
from triage.workers import handles
from triage.workers.encryption import BITLOCKER_GUID, detect, sniff
from triage.workers.image import identify
from triage.workers.refs import VolumeRef
from triage.workers.unlock import VolumeKey, forget, install, parse_key
from triage.workers.volumes import list_partitions, open_fs
from triage.workers.walk import walk_filesystem
from triage_test_fixtures.encrypted import LAYOUT, PASSPHRASE, build_luks_disk
from triage_test_fixtures.mkfs import SECTOR

pytestmark = pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="cryptsetup not installed")


@pytest.fixture(scope="module", params=["luks1", "luks2"])
def luks_disk(request, tmp_path_factory):
    return build_luks_disk(tmp_path_factory.mktemp(request.param), request.param)


def _vol(disk, name: str) -> VolumeRef:
    ref = identify(disk.path)
    parts = {p.index: p for p in list_partitions(ref)}
    p = parts[disk.partitions[name]]
    assert p.start == LAYOUT[name][0] * SECTOR
    return VolumeRef(ref, p.index, p.start, p.length)


def test_luks_header_is_reported_with_its_uuid(luks_disk):
    with pytest.raises(FilesystemError) as info:
        open_fs(_vol(luks_disk, "luks"))
    kind = luks_disk.luks_type.upper()
    assert str(info.value).startswith(f"encrypted: {kind} (id {luks_disk.uuid}")
    assert str(info.value).endswith("no key given")
    if kind == "LUKS1":
        assert "cipher aes-xts-plain64" in str(info.value)


def test_random_partition_is_possibly_encrypted_and_plain_one_is_walked(luks_disk):
    with pytest.raises(FilesystemError, match=r"^encrypted\? no filesystem and high-entropy data"):
        open_fs(_vol(luks_disk, "random"))
    assert walk_filesystem(_vol(luks_disk, "plain")).status == "ok"


def test_zeros_are_not_encrypted():
    blob = bytes(1 << 20)
    assert detect(lambda o, n: blob[o:o + n], 0, len(blob)) is None
    text = (b"the quick brown fox " * 60000)[: 1 << 20]
    assert detect(lambda o, n: text[o:o + n], 0, len(text)) is None


def test_bitlocker_and_filevault_headers():
    """Header layouts from the libbde/libfvde format documentation (no BitLocker volume can be made here)."""
    guid = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    win7 = bytearray(4096)
    win7[3:11] = b"-FVE-FS-"
    win7[160:176] = guid.bytes_le
    assert (sniff(bytes(win7)).kind, sniff(bytes(win7)).identifier) == ("BitLocker", str(guid))
    togo = bytearray(4096)
    togo[3:11] = b"MSWIN4.1"
    togo[424:440] = BITLOCKER_GUID
    assert sniff(bytes(togo)).kind == "BitLocker To Go"
    cs = bytearray(4096)
    cs[88:92] = b"CS\x01\x00"
    assert sniff(bytes(cs)).kind == "FileVault 2 (Core Storage)"


def test_a_key_unlocks_luks_and_the_inner_filesystem_is_walked(luks_disk):
    """LUKS1 through libluksde, LUKS2 through triage.workers.luks2."""
    vol = _vol(luks_disk, "luks")
    keys = {(vol.image.path, vol.index): VolumeKey("passphrase", PASSPHRASE)}
    install(keys)
    try:
        handles.clear()
        res = walk_filesystem(vol)
        assert res.status == "ok" and res.filesystem == "FAT16"
        got = {p for p in res.table.column("path").to_pylist()}
        want = {e.path for e in luks_disk.inner_truth.entries}
        assert want and want <= got
    finally:
        forget(keys)
        handles.clear()


def test_a_wrong_key_says_so_without_the_key(luks_disk):
    vol = _vol(luks_disk, "luks")
    keys = {(vol.image.path, vol.index): VolumeKey("passphrase", "wrong-horse-123")}
    install(keys)
    try:
        handles.clear()
        with pytest.raises(FilesystemError) as info:
            open_fs(vol)
        assert str(info.value).startswith(f"encrypted: {luks_disk.luks_type.upper()}")
        assert "key given does not unlock it" in str(info.value)
        assert "wrong-horse" not in str(info.value)
    finally:
        forget(keys)
        handles.clear()


def test_key_specs(tmp_path):
    assert parse_key("3=passphrase:a=b:c") == (3, VolumeKey("passphrase", "a=b:c"))
    assert parse_key("2=bare secret") == (2, VolumeKey("passphrase", "bare secret"))
    assert parse_key("1=recovery:111111-222222")[1].kind == "recovery"
    assert "111111" not in repr(parse_key("1=recovery:111111-222222"))
    with pytest.raises(InputError) as info:
        parse_key("x=hunter2")
    assert "hunter2" not in str(info.value)
    kf = tmp_path / "k"
    kf.write_text("s\n")
    assert parse_key(f"4=keyfile:{kf}")[1] == VolumeKey("keyfile", str(kf))
    with pytest.raises(InputError, match="key file for partition 4 not found"):
        parse_key(f"4=keyfile:{os.devnull}x")


def test_bitlocker_to_go_is_not_taken_for_its_fat32_cover(tmp_path):
    """A To Go volume is a valid FAT32 holding only the reader program; the header says it is BitLocker."""
    from triage_test_fixtures.mkfs import make_fat

    p = tmp_path / "togo.raw"
    make_fat(p, 40 << 20, {"BitLockerToGo.exe": b"MZ" + bytes(1000)})
    with open(p, "r+b") as f:
        f.seek(424)
        f.write(BITLOCKER_GUID)
    ref = identify(p)
    with pytest.raises(FilesystemError, match=r"^encrypted: BitLocker To Go .*no key given"):
        open_fs(VolumeRef(ref, 0, 0, ref.size))
