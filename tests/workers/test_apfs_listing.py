"""An APFS volume libfsapfs cannot read (its superblock damaged) still gets a row of its own whose status names
the volume and the reason; the device counts as partly triaged (exit 4) and the rest of the disk is triaged."""

from __future__ import annotations

import shutil

import pytest

from triage.workers.apfs import APFS_BASE
from triage_test_fixtures import macdisk

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("mkapfs") is None, reason="apfsprogs not installed")]


def test_a_damaged_volume_is_a_row_naming_it_and_the_reason(tmp_path, triage_cli, read_rows):
    disk = macdisk.build_mac_disk(tmp_path, {"notes.txt": b"kept\n" * 100})
    with open(disk.path, "r+b") as fh:  # the volume superblock's magic 'APSB' -> 'XXXX'
        fh.seek(disk.container_sector * 512 + disk.volume_block * 4096 + 32)
        fh.write(b"XXXX")
    res = triage_cli("run", disk.path, "-o", tmp_path / "out", "--no-progress", "--no-reports", "--no-carve")
    assert res.returncode == 4, res.stdout + res.stderr  # partly triaged: the APFS volume is not walked
    vols = read_rows(tmp_path / "out" / "volumes.parquet")
    container = next(v for v in vols if v["layer"] == "apfs-container")
    assert container["flags"] == "meta" and "APFS container (volumes: volume 0)" in container["description"]
    volume = next(v for v in vols if v["layer"] == "apfs-volume")
    assert (volume["slot"], volume["parent"], volume["index"]) == ("apfs:volume 0", container["index"],
                                                                 APFS_BASE + 100 * container["index"])
    assert "(unreadable)" in volume["description"] and volume["filesystem"] is None and volume["files"] == 0
    assert volume["status"] == "APFS volume 0: unreadable by libfsapfs: invalid signature"
    assert "APFS volume 0: unreadable by libfsapfs: invalid signature" in res.stdout
    efi = next(v for v in vols if v["layer"] == "partition" and v["filesystem"] == "FAT12")
    assert efi["status"] == "ok" and efi["files"] >= 1
    files = read_rows(tmp_path / "out" / "files.parquet")
    assert any(r["path"] == "readme.txt" and r["partition"] == efi["index"] and r["md5"] for r in files)
