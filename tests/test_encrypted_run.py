"""`triage run` on disks with encrypted partitions: reported, counted as a problem, and unlocked given a key."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from triage_test_fixtures.encrypted import PASSPHRASE, build_luks_disk

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="no cryptsetup")]


def _everything_written(*roots: Path) -> bytes:
    out = b""
    for root in roots:
        for f in root.rglob("*"):
            if f.is_file():
                out += f.read_bytes()
    return out


def test_encrypted_partitions_are_reported_not_passed_over(tmp_path, triage_cli, read_rows):
    disk = build_luks_disk(tmp_path / "img", "luks2")
    res = triage_cli("run", disk.path, "-o", tmp_path / "out", "--no-progress")
    assert res.returncode == 4, res.stdout + res.stderr  # triaged, partly
    vols = {v["index"]: v for v in read_rows(tmp_path / "out" / "volumes.parquet")}
    luks, rnd, plain = (vols[disk.partitions[k]] for k in ("luks", "random", "plain"))
    assert luks["status"] == f"encrypted: LUKS2 (id {disk.uuid}); no key given"
    assert rnd["status"].startswith("encrypted? no filesystem and high-entropy data")
    assert plain["status"] == "ok" and plain["filesystem"] == "FAT12"
    assert f"partition {disk.partitions['luks']} (byte " in res.stdout and "encrypted: LUKS2" in res.stdout


def test_a_key_unlocks_luks1_and_is_never_written(tmp_path, triage_cli, read_rows):
    disk = build_luks_disk(tmp_path / "img", "luks1")
    home = Path(os.environ["TRIAGE_HOME"])
    part = disk.partitions["luks"]
    res = triage_cli("run", disk.path, "-o", tmp_path / "out", "--no-progress", "--key", f"{part}=passphrase:{PASSPHRASE}",
                     "--case", "enc-1")
    assert res.returncode == 4, res.stdout + res.stderr  # the random partition is still a problem
    vols = {v["index"]: v for v in read_rows(tmp_path / "out" / "volumes.parquet")}
    assert (vols[part]["status"], vols[part]["filesystem"]) == ("ok", "FAT16")
    rows = {r["path"]: r for r in read_rows(tmp_path / "out" / "files.parquet") if r["partition"] == part}
    hashed = 0
    for inode, digests in disk.inner_truth.digests.items():
        entry = next(e for e in disk.inner_truth.entries if e.inode == inode)
        if entry.path in rows and not entry.deleted:
            assert rows[entry.path]["md5"] == digests.md5, entry.path
            hashed += 1
    assert hashed >= 2 and rows["secret/plans.txt"]["size"] == len(disk.contents["secret/plans.txt"])
    written = res.stdout.encode() + res.stderr.encode() + _everything_written(tmp_path / "out", home)
    assert PASSPHRASE.encode() not in written


def test_a_bad_key_spec_is_a_usage_error_that_does_not_echo_it(tmp_path, triage_cli):
    res = triage_cli("run", tmp_path / "x.dd", "-o", tmp_path / "out", "--key", "x=hunter2", cluster=False)
    assert res.returncode == 2 and "--key" in res.stderr and "hunter2" not in res.stderr + res.stdout
