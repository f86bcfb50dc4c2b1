"""LVM on LUKS (what Linux installers make with full-disk encryption): given the key for the encrypted partition,
its physical volume's logical volumes are listed and walked; their rows sit under the LUKS row, and their files
have no image offset (plaintext). The physical volume is lvm2's own (the LVM fixture), encrypted per sector by
the LUKS fixture's XTS writer under a header cryptsetup wrote."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from triage_test_fixtures import lvm
from triage_test_fixtures.encrypted import PASSPHRASE, _xts_encrypt
from triage_test_fixtures.mkfs import MIB, SECTOR, partition, place
from triage_test_fixtures.results import inode_string, read_parquet

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("cryptsetup") is None or lvm.can_build() is not None,
                                 reason="needs cryptsetup and lvm2 with loop devices")]
PAYLOAD = 4096  # sectors of LUKS header before the payload


def test_lvm_inside_luks_is_walked_with_the_key(tmp_path, triage_cli):
    disk = lvm.build_lvm_disk(tmp_path / "lvm")
    pv_start = lvm.LAYOUT["pv"][0] * SECTOR
    pv = disk.path.read_bytes()[pv_start:pv_start + lvm.PV_BYTES]
    luks = tmp_path / "luks.part"
    with open(luks, "wb") as fh:
        fh.truncate(PAYLOAD * SECTOR + len(pv))
    key = hashlib.sha512(b"lvm on luks").digest()
    (tmp_path / "vk").write_bytes(key)
    subprocess.run(["cryptsetup", "luksFormat", "--type", "luks2", "--pbkdf", "pbkdf2", "--batch-mode",
                    "--pbkdf-force-iterations", "1000", "--volume-key-file", str(tmp_path / "vk"), "--key-size",
                    "512", "--cipher", "aes-xts-plain64", "--sector-size", "512", "--offset", str(PAYLOAD),
                    "--key-file", "-", str(luks)], input=PASSPHRASE.encode(), check=True, capture_output=True)
    with open(luks, "r+b") as fh:
        fh.seek(PAYLOAD * SECTOR)
        fh.write(_xts_encrypt(key, pv))
    image = tmp_path / "laptop.raw"
    with open(image, "wb") as fh:
        fh.truncate(2048 * SECTOR + luks.stat().st_size + MIB)
    partition(image, f"label: dos\nunit: sectors\n\nstart=2048, size={luks.stat().st_size // SECTOR}, type=83\n")
    place(image, luks, 2048)
    part = 2  # mmls: table (0), unallocated (1), the LUKS partition (2)

    locked = triage_cli("run", image, "-o", tmp_path / "locked", "--no-progress", "--no-reports")
    assert locked.returncode == 4 and "encrypted: LUKS2" in locked.stdout
    res = triage_cli("run", image, "-o", tmp_path / "out", "--no-progress", "--no-reports",
                     "--key", f"{part}=passphrase:{PASSPHRASE}")
    assert res.returncode == 0, res.stdout + res.stderr
    vols = {v["index"]: v for v in read_parquet(tmp_path / "out" / "volumes.parquet")}
    assert vols[part]["layer"] == "luks" and vols[part]["flags"] == "meta"
    assert f"holding the LVM2 physical volume of group {disk.group}" in vols[part]["description"]
    lvs = {v["slot"].rsplit("/", 1)[1]: v for v in vols.values() if v["layer"] == "lvm-lv"}
    assert set(lvs) == set(disk.truths) and all(v["parent"] == part and v["extents"] == [] for v in lvs.values())
    files = read_parquet(tmp_path / "out" / "files.parquet")
    for name, truth in disk.truths.items():
        rows = {(r["path"], inode_string(r)): r for r in files if r["partition"] == lvs[name]["index"]}
        for inode, digests in truth.digests.items():
            entry = next(e for e in truth.entries if e.inode == inode)
            assert rows[(entry.path, inode)]["md5"] == digests.md5, (name, entry.path)
            assert rows[(entry.path, inode)]["offset"] is None  # plaintext: no image offset
