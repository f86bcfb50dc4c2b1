"""Logical sources without Dask: recognition, the listing, and every member's content row.

The sources are built at run time (``triage_test_fixtures.extractions``); every
row is checked against hashes computed from the builder's own bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tarfile
from pathlib import Path

import pyarrow as pa
import pytest

from triage.plan import plan_batches
from triage.settings import content_options
from triage.workers.extraction import hash_source, read_members, shape, walk_source
from triage.workers.image import identify
from triage.workers.refs import VolumeRef
from triage_test_fixtures.extractions import (MTIME, OUTSIDE_CONTENT, build_folder, build_tar, build_zip,
                                              picture)

OUTSIDE_HASHES = {hashlib.new(a, OUTSIDE_CONTENT).hexdigest() for a in ("md5", "sha1", "sha256")}


def triage_source(path: Path, batch_bytes: int = 1 << 20, batch_files: int = 3) -> tuple[dict, list[dict], object]:
    """identify, listing, content in small batches, joined: path -> row (as the merge would)."""
    ref = identify(path)
    walk = walk_source(ref)
    rows = walk.table.to_pylist()
    for batch in plan_batches(VolumeRef(ref, 0, 0, ref.size), walk.table, batch_bytes, batch_files,
                              content_options()):
        for r in pa.Table.from_batches([read_members(batch)]).to_pylist():
            rows[r["row"]].update({k: v for k, v in r.items() if k != "status"})
            rows[r["row"]]["content_status"] = r["status"]
    return {r["path"]: r for r in rows}, rows, (ref, walk)


def check_rows(ext, by_path: dict) -> None:
    for e in ext.entries:
        row = by_path[e.shown]
        assert row["name"] == e.shown.rsplit("/", 1)[-1]
        assert row["source"] == "logical" and row["deleted"] is False and row["partition"] == 0
        if e.kind == "r":
            assert row["type"] == "r/r" and row["size"] == len(e.data)
            assert {a: row[a] for a in ("md5", "sha1", "sha256")} == e.hashes(), e.shown
            assert row["content_status"] == "ok"
        elif e.kind == "l":
            assert row["type"] == "l/l" and row.get("md5") is None
            assert row["status"] == f"symbolic link -> {e.data.decode()} (not followed)"
        else:
            assert row["type"] == "d/d"
    for row in by_path.values():
        assert not OUTSIDE_HASHES & {row.get("md5"), row.get("sha1"), row.get("sha256")}


@pytest.mark.parametrize("fmt,build", [
    ("tar", lambda p: build_tar(p / "android.tar")),
    ("tgz", lambda p: build_tar(p / "android.tar.gz", gz=True)),
    ("zip", lambda p: build_zip(p / "android.zip")),
    ("tar", lambda p: build_tar(p / "ios.tar", ios=True)),
    ("zip", lambda p: build_zip(p / "ios.zip", ios=True)),
    ("ufdr", lambda p: build_zip(p / "report.zip", ufdr=True)),
    ("folder", lambda p: build_folder(p / "android")),
])
def test_every_member_has_its_own_hashes_and_nothing_outside_is_read(tmp_path, fmt, build):
    ext = build(tmp_path)
    before = sorted(os.listdir(tmp_path))
    by_path, rows, (ref, walk) = triage_source(ext.path)
    assert ref.format == fmt
    check_rows(ext, by_path)
    assert [r["inode"] for r in rows] == list(range(1, len(rows) + 1))  # inode = member ordinal
    assert sorted(os.listdir(tmp_path)) == before  # nothing written beside the source
    want = "iOS" if "ios" in ext.path.name else "Android"
    assert shape(list(by_path), ref.format).startswith(f"{want} file system extraction")
    pics = [r for r in rows if r["path"].lower().endswith((".jpg", ".png"))]
    assert pics and all(r["phash"] and r["mime"].startswith("image/") for r in pics)


def test_paths_are_kept_as_stored(tmp_path):
    by_path, _rows, _ = triage_source(build_tar(tmp_path / "a.tar").path)
    assert "/system/build.prop" in by_path and "../escaped.txt" in by_path
    assert "data/media/0/Download/caf\\xe9-\\xff.txt" in by_path  # invalid UTF-8 shown, as the walk does
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_times_come_from_the_archive_in_utc(tmp_path):
    tar_rows, _r, _ = triage_source(build_tar(tmp_path / "a.tar").path)
    zip_rows, _r, _ = triage_source(build_zip(tmp_path / "a.zip").path)
    jpg = "data/media/0/DCIM/Camera/IMG_20240101_120000.jpg"
    assert tar_rows[jpg]["mtime"] == dt.datetime.fromtimestamp(MTIME + 1, dt.timezone.utc)
    assert zip_rows[jpg]["mtime"] == dt.datetime.fromtimestamp(MTIME + 1, dt.timezone.utc)  # 0x5455 extra field
    # no extended timestamp: the DOS date and time, read as UTC
    assert zip_rows["data/media/0/empty.txt"]["mtime"] == dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)


def test_tar_member_offsets_point_at_their_data(tmp_path):
    ext = build_tar(tmp_path / "a.tar")
    by_path, _rows, _ = triage_source(ext.path)
    blob = ext.path.read_bytes()
    for e in ext.files():
        off = by_path[e.shown]["offset"]
        assert blob[off:off + len(e.data)] == e.data


def test_folder_links_and_fifos_are_rows_never_followed(tmp_path):
    ext = build_folder(tmp_path / "phone")
    by_path, _rows, (ref, _walk) = triage_source(ext.path)
    assert by_path["data/dir-out"]["type"] == "l/l" and by_path["data/fifo"]["type"] == "p/p"
    assert not any(p.startswith("data/dir-out/") for p in by_path)  # the folder a link points at is not walked
    assert ref.size == sum(len(e.data) for e in ext.files())


def test_source_hash_is_the_archive_file_and_a_folder_manifest_is_reproducible(tmp_path):
    ext = build_zip(tmp_path / "a.zip")
    digest = hash_source(identify(ext.path))
    blob = ext.path.read_bytes()
    assert (digest.md5, digest.sha256) == (hashlib.md5(blob).hexdigest(), hashlib.sha256(blob).hexdigest())
    folder = build_folder(tmp_path / "f")
    first = hash_source(identify(folder.path))
    assert first == hash_source(identify(folder.path)) and first.error is None
    (folder.path / "data/media/0/empty.txt").write_bytes(b"x")
    assert hash_source(identify(folder.path)).sha256 != first.sha256
    os.utime(folder.outside, None)
    folder.outside.write_bytes(b"changed outside")  # what lies outside does not count
    assert hash_source(identify(folder.path)).sha256 == hash_source(identify(folder.path)).sha256


def test_a_truncated_tar_keeps_the_members_before_the_cut(tmp_path):
    ext = build_tar(tmp_path / "a.tar")
    blob = ext.path.read_bytes()
    with tarfile.open(ext.path) as tf:
        db = next(m for m in tf.getmembers() if m.name.endswith("msgstore.db"))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(blob[:db.offset_data + 1000])
    by_path, _rows, (_ref, walk) = triage_source(cut)
    assert walk.status.startswith("truncated or corrupt after member")
    jpg = ext.entries[2]
    assert by_path[jpg.shown]["md5"] == jpg.hashes()["md5"]
    assert by_path["data/data/com.whatsapp/databases/msgstore.db"]["content_status"].startswith(
        "partial: read error at byte 1000")


def test_a_zip_without_its_central_directory_keeps_the_members_its_local_headers_show(tmp_path):
    ext = build_zip(tmp_path / "a.zip")
    blob = ext.path.read_bytes()
    db = ext.entries[4]
    cut = tmp_path / "cut.zip"
    cut.write_bytes(blob[:blob.index(db.raw) + len(db.raw) + 9 + 500])  # 500 bytes into the database's data
    ref = identify(cut)
    assert ref.format == "zip"
    by_path, _rows, (_ref, walk) = triage_source(cut)
    assert walk.status.startswith("zip central directory unreadable") and "5 member(s) recovered" in walk.status
    for e in ext.entries[:4]:
        if e.kind == "r":
            assert by_path[e.shown]["sha256"] == e.hashes()["sha256"] and by_path[e.shown]["content_status"] == "ok"
    jpg = ext.entries[2]
    assert by_path[jpg.shown]["mtime"] == dt.datetime.fromtimestamp(jpg.mtime, dt.timezone.utc)
    assert by_path[db.shown]["content_status"].startswith("partial: read error at byte")


def test_encrypted_and_corrupt_zip_members_are_statuses(tmp_path):
    ext = build_zip(tmp_path / "a.zip")
    blob = bytearray(ext.path.read_bytes())
    data = picture("PNG", 2)
    i = blob.find(b"screenshot.png")
    blob[i + 14 + 40] ^= 0xFF  # a byte of the deflated picture: CRC (or inflate) fails
    for m in range(len(blob)):  # the central directory's encryption flag of the WhatsApp database
        if blob[m:m + 4] == b"PK\x01\x02" and blob[m + 46:m + 46 + 22] == b"data/data/com.whatsapp":
            blob[m + 8] |= 1
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(blob))
    by_path, _rows, _ = triage_source(bad)
    assert by_path["data/data/com.whatsapp/databases/msgstore.db"]["content_status"].startswith(
        "unreadable: member data/data/com.whatsapp/databases/msgstore.db is encrypted")
    png = by_path["data/media/0/Pictures/screenshot.png"]
    assert png["content_status"].startswith(("partial", "unreadable")) and png["md5"] != hashlib.md5(data).hexdigest()
    assert by_path["data/media/0/empty.txt"]["content_status"] == "ok"


@pytest.mark.parametrize("build", [lambda p: build_folder(p / "phone"), lambda p: build_zip(p / "a.zip")])
def test_the_listing_is_the_same_after_reading_everything(tmp_path, build):
    """Byte-identical results across runs: reading members changes nothing the listing records
    (a folder's files are opened O_NOATIME, so their access times stay as listed)."""
    ext = build(tmp_path)
    first = walk_source(identify(ext.path)).table
    triage_source(ext.path)
    assert walk_source(identify(ext.path)).table.equals(first)


def test_a_tar_gz_is_read_by_a_few_tasks_each_from_the_start_of_the_stream(tmp_path):
    """Members split across batches are each read by their own pass, whichever batch runs first."""
    ext = build_tar(tmp_path / "a.tgz", gz=True)
    by_path, _rows, _ = triage_source(ext.path, batch_bytes=1, batch_files=1)  # one member per task
    check_rows(ext, by_path)
