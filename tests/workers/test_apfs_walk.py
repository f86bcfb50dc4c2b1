"""An APFS volume walked through libfsapfs gives the rows TSK's `fls -P apfs` lists, and its content tasks the
bytes `icat -P apfs` outputs. The volume is made by mkapfs, its files written by tests/fixtures/apfs.py."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from triage.workers.content import read_content, read_segment
from triage.workers.refs import ContentBatch, ContentItem, ContentOptions, ImageRef, Segment, VolumeRef
from triage.workers.resumable import available as resumable_available
from triage.workers.volumes import list_partitions
from triage.workers.walk import walk_filesystem
from triage_test_fixtures import apfs, macdisk

pytestmark = pytest.mark.skipif(shutil.which("mkapfs") is None or shutil.which("fls") is None,
                                reason="needs apfsprogs (mkapfs) and sleuthkit")


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    disk = macdisk.build_mac_disk(tmp_path_factory.mktemp("apfs-walk"))
    ref = ImageRef(str(disk.path), "raw", (str(disk.path),), disk.path.stat().st_size)
    part = next(p for p in list_partitions(ref) if p.layer == "apfs-volume")
    vol = VolumeRef(ref, part.index, part.start, part.length)
    walk = walk_filesystem(vol)
    return disk, vol, walk, walk.table.to_pylist()


def test_the_walk_lists_what_fls_lists(walked):
    disk, vol, walk, rows = walked
    assert (walk.filesystem, walk.status) == ("APFS", "ok")
    assert {r["path"]: (r["inode"], r["type"]) for r in rows} == macdisk.tsk_listing(disk)
    by_path = {r["path"]: r for r in rows}
    for a in disk.added:
        assert by_path[a.path]["inode"] == a.oid
        assert by_path[a.path]["size"] == (len(disk.files[a.path]) if a.path in disk.files else 0)
        assert by_path[a.path]["type"] == ("d/d" if a.is_dir else "l/l" if a.link else "r/r")
    assert {r["source"] for r in rows} == {"allocated"} and not any(r["deleted"] for r in rows)
    assert all(r["partition"] == vol.index and r["name"] == r["path"].rsplit("/", 1)[-1] for r in rows)


def test_times_are_tsks_in_utc_to_the_nanosecond(walked):
    disk, _, walk, rows = walked
    tsk = macdisk.tsk_times(disk)
    names = ("mtime", "atime", "ctime", "crtime")
    ns = {t: walk.table.column(t).cast(pa.int64()).to_pylist() for t in names}
    created, modified, changed, accessed = apfs.TIMES
    for i, r in enumerate(rows):
        got = tuple(datetime.fromtimestamp(ns[t][i] // 10**9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                    for t in names)
        assert got == tsk[r["path"]], r["path"]
        # libfsapfs reads create/mod times the other way round; the walk swaps them back
        assert [ns[t][i] for t in names] == [modified, accessed, changed, created], r["path"]


def test_content_is_icats_bytes(walked):
    disk, vol, _, rows = walked
    items = tuple(ContentItem(row=i, inode=r["inode"], attr_type=None, attr_id=None, size=r["size"], name=r["name"])
                  for i, r in enumerate(rows) if r["type"] == "r/r")
    opts = ContentOptions(chunk_bytes=4096, magic_bytes=8192, max_image_bytes=1 << 20, max_image_pixels=10**6)
    got = {rows[r["row"]]["path"]: r for r in read_content(ContentBatch(vol, items, opts)).to_pylist()}
    assert set(got) == {p for p in disk.files}
    for path, data in disk.files.items():
        r = got[path]
        assert r["status"] == "ok", (path, r["status"])
        assert (r["md5"], r["sha1"], r["sha256"]) == (hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),
                                                      hashlib.sha256(data).hexdigest()), path
        assert r["md5"] == macdisk.tsk_md5(disk, rows[r["row"]]["inode"]), path
    assert got["Documents/Photos/holiday.jpg"]["mime"] == "image/jpeg" and got["Documents/Photos/holiday.jpg"]["phash"]


def test_offsets_point_at_each_files_data_in_the_image(walked):
    disk, _, walk, rows = walked
    with open(disk.path, "rb") as fh:
        for r in rows:
            data = disk.files.get(r["path"], b"")
            if not data:
                assert r["offset"] is None, r["path"]
                continue
            fh.seek(r["offset"])
            assert fh.read(len(data)) == data, r["path"]
            assert any(s <= r["offset"] < s + n for s, n in walk.allocated), r["path"]


def test_a_bare_container_is_walked_the_same(walked):
    disk = walked[0]
    ref = ImageRef(str(disk.container), "raw", (str(disk.container),), disk.container.stat().st_size)
    parts = list_partitions(ref)
    assert [(p.layer, p.flags, p.parent) for p in parts] == [("apfs-container", "meta", None),
                                                            ("apfs-volume", "alloc", 0)]
    walk = walk_filesystem(VolumeRef(ref, parts[1].index, parts[1].start, parts[1].length))
    assert walk.status == "ok"
    assert {r["path"]: (r["inode"], r["type"]) for r in walk.table.to_pylist()} == macdisk.tsk_listing(disk)


@pytest.mark.skipif(shutil.which("apfsck") is None, reason="apfsprogs' apfsck not installed")
def test_the_hand_written_records_pass_apfsck(walked):
    res = subprocess.run(["apfsck", str(walked[0].container)], capture_output=True, text=True)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


@pytest.mark.skipif(not resumable_available(), reason="resumable hashing unavailable")
def test_a_huge_file_read_by_a_segment_chain_hashes_the_same(walked):
    disk, vol, _, rows = walked
    i, r = next((i, r) for i, r in enumerate(rows) if r["path"] == "Documents/big.bin")
    item = ContentItem(row=i, inode=r["inode"], attr_type=None, attr_id=None, size=r["size"], name=r["name"])
    opts = ContentOptions(chunk_bytes=4096, magic_bytes=8192, max_image_bytes=1 << 20, max_image_pixels=10**6)
    link, links = read_segment(Segment(vol, item, 0, 30_000, opts)), 1
    while isinstance(link, Segment):
        link, links = read_segment(link), links + 1
    got = link.to_pylist()[0]
    assert links == 4 and got["status"] == "ok"
    assert got["sha256"] == hashlib.sha256(disk.files["Documents/big.bin"]).hexdigest()
