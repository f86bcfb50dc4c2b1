"""`triage run` on a Mac's disk (GPT: an EFI partition and an APFS container whose two volumes hold files): every
file of each APFS volume walked through libfsapfs, hashed like any other, named as TSK's `fls -P apfs` names it,
with `icat -P apfs`'s bytes; volumes.parquet shows disk -> partition (the container) -> APFS volumes."""

from __future__ import annotations

import hashlib
import html
import shutil
import subprocess

import pytest

from triage.workers.apfs import APFS_BASE
from triage_test_fixtures import macdisk

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("mkapfs") is None or shutil.which("fls") is None,
                                                   reason="needs apfsprogs (mkapfs) and sleuthkit")]

HOSTILE = macdisk.HOSTILE


@pytest.fixture(scope="module")
def mac_run(tmp_path_factory, triage_cli, read_rows):
    tmp = tmp_path_factory.mktemp("apfs-run")
    disk = macdisk.build_mac_disk(tmp, data=macdisk.data_files())
    out = tmp / "out"
    res = triage_cli("run", disk.path, "-o", out, "--no-progress", "--case", "OP-APFS")
    return disk, res, out, read_rows(out / "volumes.parquet"), read_rows(out / "files.parquet")


def test_the_run_is_complete_and_exits_0(mac_run):
    disk, res, out, vols, files = mac_run
    assert res.returncode == 0, res.stdout + res.stderr
    assert "not walked" not in res.stdout and "APFS" in res.stdout


def test_volumes_show_disk_partition_container_and_volume(mac_run):
    disk, res, out, vols, files = mac_run
    container = next(v for v in vols if v["layer"] == "apfs-container")
    # the GPT entry is the container (as a partition holding an LVM PV is the PV): one row, top of its branch
    assert (container["slot"], container["volume_system"], container["flags"], container["parent"]) == \
        ("001", "gpt", "meta", None)
    assert container["start"] == disk.container_sector * 512 and container["length"] == disk.container_bytes
    assert "APFS container (volumes: Macintosh HD, Data)" in container["description"]
    assert not container["description"].startswith(":")  # a GPT entry without a name adds no empty prefix
    volumes = [v for v in vols if v["layer"] == "apfs-volume"]
    assert [(v["slot"], v["parent"], v["index"], v["filesystem"], v["status"], v["volume_system"], v["files"])
            for v in volumes] == [
        (f"apfs:{vol.label}", container["index"], APFS_BASE + 100 * container["index"] + n, "APFS", "ok", "apfs",
         len(vol.added)) for n, vol in enumerate(disk.volumes)]
    if shutil.which("apfsck"):  # the second volume and the files, written by hand, are a valid container
        assert subprocess.run(["apfsck", str(disk.container)], capture_output=True).returncode == 0
    efi = next(v for v in vols if v["layer"] == "partition" and v["filesystem"] == "FAT12")
    assert efi["status"] == "ok" and efi["parent"] is None


def test_every_file_with_tsks_name_and_inode_and_the_true_hashes(mac_run):
    disk, res, out, vols, files = mac_run
    volumes = [v for v in vols if v["layer"] == "apfs-volume"]
    for n, (vol, truth) in enumerate(zip(volumes, disk.volumes)):
        rows = {r["path"]: r for r in files if r["partition"] == vol["index"]}
        assert {p: (r["inode"], r["type"]) for p, r in rows.items()} == macdisk.tsk_listing(disk, n)
        for path, data in truth.files.items():
            r = rows[path]
            assert (r["md5"], r["sha1"], r["sha256"]) == (hashlib.md5(data).hexdigest(),
                                                          hashlib.sha1(data).hexdigest(),
                                                          hashlib.sha256(data).hexdigest()), path
            assert r["md5"] == macdisk.tsk_md5(disk, r["inode"], n) and r["status"] == "ok", path
    rows = {(r["partition"], r["path"]): r for r in files}
    photo = rows[(volumes[0]["index"], "Documents/Photos/holiday.jpg")]
    assert photo["mime"] == "image/jpeg" and photo["phash"] and photo["score"] is not None
    assert rows[(volumes[1]["index"], "Users/me/Pictures/cat.jpg")]["mime"] == "image/jpeg"
    assert rows[(volumes[0]["index"], HOSTILE)]["mime"] == "text/html"


def test_the_hostile_name_is_kept_and_escaped_in_the_reports(mac_run):
    disk, res, out, vols, files = mac_run
    assert HOSTILE in {r["path"] for r in files}
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page and html.escape("<img src=x onerror=alert(1)> naïve résumé.html") in page
    assert HOSTILE in (out / "report.csv").read_text(encoding="utf-8")


def test_a_second_run_is_byte_identical(mac_run, triaged):
    disk, res, out, vols, files = mac_run
    again = triaged(disk.path)
    for name in ("files.parquet", "volumes.parquet"):
        assert (again.out / name).read_bytes() == (out / name).read_bytes(), name
