"""An APFS container (made by apfsprogs' mkapfs) is recognised and its volumes listed as rows of their own, the
device counted as partly triaged: never passed for an image with no filesystem. libfsapfs lists the volumes."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from triage.workers.apfs import APFS_BASE
from triage_test_fixtures.mkfs import SECTOR, make_fat, partition, place, text_bytes

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("mkapfs") is None, reason="apfsprogs not installed")]


def test_apfs_container_and_volume_rows(tmp_path, triage_cli, read_rows):
    cont = tmp_path / "apfs.part"
    with open(cont, "wb") as fh:
        fh.truncate(600 << 20)  # mkapfs refuses small containers; sparse
    subprocess.run(["mkapfs", "-L", "Macintosh HD", str(cont)], check=True, capture_output=True)
    fat = tmp_path / "efi.fat"
    make_fat(fat, 4 << 20, {"readme.txt": text_bytes(5, 3)}, fat=12)
    disk = tmp_path / "mac.raw"
    with open(disk, "wb") as fh:
        fh.truncate((2048 + 8192 + (600 << 20) // SECTOR + 2048) * SECTOR)
    partition(disk, "label: gpt\nunit: sectors\n\nstart=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
              f"start=10240, size={(600 << 20) // SECTOR}, type=7C3457EF-0000-11AA-AA11-00306543ECAC\n")
    place(disk, fat, 2048)
    place(disk, cont, 10240)
    res = triage_cli("run", disk, "-o", tmp_path / "out", "--no-progress", "--no-reports", "--no-carve")
    assert res.returncode == 4, res.stdout + res.stderr  # partly triaged: the APFS volume is not walked
    vols = read_rows(tmp_path / "out" / "volumes.parquet")
    container = next(v for v in vols if v["layer"] == "apfs-container")
    assert container["flags"] == "meta" and "APFS container (volumes: Macintosh HD)" in container["description"]
    volume = next(v for v in vols if v["layer"] == "apfs-volume")
    assert (volume["slot"], volume["parent"], volume["index"]) == ("apfs:Macintosh HD", container["index"],
                                                                 APFS_BASE + 100 * container["index"])
    assert volume["status"].startswith("APFS volume Macintosh HD: listed, not walked")
    assert "APFS volume Macintosh HD: listed, not walked" in res.stdout
    efi = next(v for v in vols if v["layer"] == "partition" and v["filesystem"] == "FAT12")
    assert efi["status"] == "ok"
