"""Volume Shadow Copies without Dask: the hand-built stores are real ones (pyvshadow opens them, TSK reads
the snapshots it assembles as the ground truth says), and the worker lists, opens and walks each snapshot,
saying in one line why when a store is damaged."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from triage.merge import fold_snapshots
from triage.rules.errors import FilesystemError
from triage.workers.image import identify
from triage.workers.refs import VolumeRef
from triage.workers.schema import FILES_SCHEMA
from triage.workers.volumes import list_partitions
from triage.workers.vss import has_stores, list_snapshots, open_snapshot, snapshot_index
from triage.workers.walk import walk_filesystem
from triage_test_fixtures import vss
from triage_test_fixtures.mkfs import MIB, make_ntfs, run_tool

pytestmark = pytest.mark.skipif(shutil.which("mkntfs") is None or shutil.which("icat") is None,
                                reason="needs ntfs-3g (mkntfs, ntfscp) and sleuthkit")


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> vss.VssImage:
    return vss.build_vss_ntfs(tmp_path_factory.mktemp("vss"))


def _stores(path: Path):
    import pyvshadow

    fh = open(path, "rb")
    v = pyvshadow.volume()
    v.open_file_object(fh)
    return v, fh


def test_pyvshadow_reads_each_snapshot_as_the_volume_was(volume, tmp_path):
    v, fh = _stores(volume.path)
    try:
        assert v.number_of_stores == 2
        for n, snap in enumerate(volume.snapshots):  # libvshadow's order: oldest first (the catalog lists newest first)
            store = v.get_store(n)
            assert (store.identifier, store.copy_identifier) == (str(snap.store_id), str(snap.shadow_id))
            assert store.creation_time.replace(tzinfo=snap.created.tzinfo) == snap.created
            got, want = store.read_buffer_at_offset(store.volume_size, 0), snap.state.read_bytes()
            differ = {b for b in range(0, len(want), vss.BLOCK) if got[b:b + vss.BLOCK] != want[b:b + vss.BLOCK]}
            if n == len(volume.snapshots) - 1:
                assert not differ  # the newest: byte for byte
            else:
                assert differ and differ <= volume.store_blocks  # older: all but the stores' own files
            dump = tmp_path / f"snapshot{n + 1}.raw"
            dump.write_bytes(got)
            # the oracle: TSK on the bytes pyvshadow gives lists the files of that state with their content
            listed = run_tool(["fls", str(dump)]).decode()
            for name, md5 in snap.md5.items():
                line = next(x for x in listed.splitlines() if x.endswith(f"\t{name}"))
                inode = line.split()[-2].rstrip(":").split("-")[0]
                assert hashlib.md5(run_tool(["icat", str(dump), inode])).hexdigest() == md5, (n, name)
    finally:
        v.close()
        fh.close()
    assert set(volume.snapshots[0].md5) == {"keep.txt", "edit.txt", "gone.txt", "draft.txt"}
    assert set(volume.snapshots[1].md5) == {"keep.txt", "edit.txt", "gone.txt"}
    live = run_tool(["fls", str(volume.path)]).decode()
    assert "\tnew.txt" in live and "\tgone.txt" not in live  # gone.txt's entry was reused by new.txt


def test_the_header_is_found_cheaply_and_only_where_it_is(volume, tmp_path):
    live = volume.path.read_bytes()
    assert has_stores(lambda o, n: live[o:o + n], len(live))
    plain = tmp_path / "plain.ntfs"
    make_ntfs(plain, 8 * MIB, {"a.txt": b"x" * 5000}, staging=tmp_path / "src")
    data = plain.read_bytes()
    assert not has_stores(lambda o, n: data[o:o + n], len(data))
    ref = identify(plain)
    assert list_snapshots(VolumeRef(ref, 0, 0, ref.size)) == []


def test_snapshots_listed_oldest_first_and_walked(volume):
    ref = identify(volume.path)
    [whole] = list_partitions(ref)  # a bare NTFS: one whole-image volume, index 0
    rows = list_snapshots(VolumeRef(ref, whole.index, whole.start, whole.length))
    assert [(r.index, r.slot, r.layer, r.parent, r.volume_system, r.extents) for r in rows] == [
        (snapshot_index(0, 0), "vss:1", "vss", 0, "vss", ()), (snapshot_index(0, 1), "vss:2", "vss", 0, "vss", ())]
    assert "created 2024-03-01T09:30:15Z" in rows[0].description and str(vss.SNAPSHOTS[0][1]) in rows[0].description
    assert "created 2024-04-02T17:05:42Z" in rows[1].description
    walk = walk_filesystem(VolumeRef(ref, rows[0].index, rows[0].start, rows[0].length))
    assert (walk.filesystem, walk.status) == ("NTFS", "ok")
    names = {r["path"]: r for r in walk.table.to_pylist()}
    assert {"keep.txt", "edit.txt", "gone.txt", "draft.txt"} <= set(names) and "new.txt" not in names
    assert names["draft.txt"]["offset"] is None  # a snapshot's bytes have no single image offset
    assert walk.allocated == ()


@pytest.mark.parametrize("what,reason", [("catalog", "store catalog unreadable: invalid catalog header identifier"),
                                         ("block-list", "store unreadable: invalid store block list header identifier")])
def test_a_damaged_store_is_one_line_naming_the_volume(volume, tmp_path, what, reason):
    damaged = tmp_path / f"{what}.ntfs"
    shutil.copyfile(volume.path, damaged)
    with open(damaged, "r+b") as fh:
        fh.seek(volume.offsets[what])
        fh.write(b"\xff" * 32)
    ref = identify(damaged)
    rows = list_snapshots(VolumeRef(ref, 0, 0, ref.size))
    assert rows and all(r.layer == "vss" and r.parent == 0 for r in rows)
    for r in rows:
        with pytest.raises(FilesystemError) as err:
            open_snapshot(VolumeRef(ref, r.index, r.start, r.length))
        assert reason in str(err.value) and "of volume 0" in str(err.value) and "\n" not in str(err.value)
        walk = walk_filesystem(VolumeRef(ref, r.index, r.start, r.length))
        assert walk.filesystem is None and reason in walk.status and walk.table.num_rows == 0
    live = walk_filesystem(VolumeRef(ref, 0, 0, ref.size))  # the live volume is untouched by it
    assert live.status == "ok" and "new.txt" in live.table.column("path").to_pylist()


def _row(partition: int, path: str, inode: int, sha: str | None, source: str = "allocated",
         container: str | None = None) -> dict:
    return {"partition": partition, "path": path, "name": path.rsplit("/", 1)[-1], "inode": inode, "type": "r/r",
            "size": 10, "deleted": False, "source": source, "md5": sha and sha[:32], "sha256": sha, "status": "ok",
            "container": container}


def test_fold_marks_snapshot_rows_and_drops_what_the_live_volume_holds():
    s1 = snapshot_index(2, 0)
    same, old = "a" * 64, "b" * 64
    rows = [_row(2, "docs.zip", 40, same), _row(2, "docs.zip/a.txt", 40, "c" * 64, "archive member", "docs.zip"),
            _row(s1, "docs.zip", 40, same), _row(s1, "docs.zip/a.txt", 40, "c" * 64, "archive member", "docs.zip"),
            _row(s1, "ledger.txt", 41, old), _row(2, "ledger.txt", 41, "d" * 64),
            _row(s1, "moved.txt", 42, same), _row(2, "renamed.txt", 42, same),  # same inode and content: dropped
            _row(s1, "{x}{3808876b-c176-4e48-b7ae-04046e6cc752}", 43, None)]
    table = pa.Table.from_pylist(rows, schema=FILES_SCHEMA)
    got = {(r["partition"], r["path"]): r["source"] for r in fold_snapshots(table).to_pylist()}
    assert got == {(2, "docs.zip"): "allocated", (2, "docs.zip/a.txt"): "archive member",
                   (s1, "ledger.txt"): "vss:1", (2, "ledger.txt"): "allocated", (2, "renamed.txt"): "allocated"}


def test_a_snapshot_index_is_no_other_layers_index():
    """Volume indexes encode their layer (LVM, APFS, VSS bases): a snapshot's is neither an APFS volume's
    nor an LV's, whatever order the readers are asked in."""
    from triage.workers import apfs, lvm
    from triage.workers.vss import snapshot_index, store_number

    for parent, n in ((2, 0), (5, 3), (apfs.APFS_BASE + 101, 1)):
        index = snapshot_index(parent, n)
        assert store_number(index) == n
        assert apfs.volume_number(index) is None and lvm.lv_number(index) is None
