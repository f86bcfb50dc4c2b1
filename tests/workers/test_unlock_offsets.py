"""Inside an unlocked encrypted volume the plaintext has no image offset: files.parquet says null, never a number
pointing at ciphertext; volumes.parquet names the layer ('luks'), and the ciphertext is not carved as if it were
the plaintext's free space."""

from __future__ import annotations

import shutil

import pytest

from triage_test_fixtures.encrypted import PASSPHRASE, build_luks_disk
from triage_test_fixtures.mkfs import text_bytes

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="no cryptsetup")]


def test_unlocked_volume_rows_have_no_image_offset(tmp_path, triage_cli, read_rows):
    disk = build_luks_disk(tmp_path / "img", "luks1")
    part = disk.partitions["luks"]
    res = triage_cli("run", disk.path, "-o", tmp_path / "out", "--no-progress", "--key", f"{part}=passphrase:{PASSPHRASE}")
    assert res.returncode == 4, res.stdout + res.stderr
    vols = {v["index"]: v for v in read_rows(tmp_path / "out" / "volumes.parquet")}
    assert (vols[part]["layer"], vols[part]["parent"], vols[part]["filesystem"]) == ("luks", None, "FAT16")
    assert vols[disk.partitions["plain"]]["layer"] == "partition"
    files = read_rows(tmp_path / "out" / "files.parquet")
    inside = [r for r in files if r["partition"] == part]
    ledger = next(r for r in inside if r["path"] == "ledger.bin")
    assert ledger["md5"] is not None and ledger["offset"] is None
    assert all(r["offset"] is None for r in inside)
    readme = next(r for r in files if r["partition"] == disk.partitions["plain"] and r["path"] == "readme.txt")
    want = text_bytes(72, 3)  # what the fixture wrote there
    assert disk.path.read_bytes()[readme["offset"]:readme["offset"] + len(want)] == want  # plain: image offsets kept
    carved = [r for r in files if r["source"] == "carved" and r["partition"] == part]
    assert carved == []
