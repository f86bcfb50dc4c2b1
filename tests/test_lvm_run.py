"""`run_image` on a disk with an LVM2 physical volume: each logical volume walked like a partition."""

from __future__ import annotations

import pytest

from triage_test_fixtures import lvm
from triage_test_fixtures.results import inode_string

pytestmark = [pytest.mark.slow, pytest.mark.skipif(lvm.can_build() is not None, reason=str(lvm.can_build()))]


@pytest.fixture(scope="module")
def lvm_run(tmp_path_factory, triaged):
    disk = lvm.build_lvm_disk(tmp_path_factory.mktemp("lvm"))
    return disk, triaged(disk.path)


def test_volumes_show_partition_group_and_logical_volumes(lvm_run):
    disk, run = lvm_run
    assert run.result.exit_code == 0, run.result.problems
    pv = run.volume(disk.pv_index)
    assert pv["flags"] == "meta" and f"LVM2 physical volume of group {disk.group} (logical volumes: home, media)" in \
        pv["description"]
    lvs = [v for v in run.volumes if v["volume_system"] == "lvm"]
    assert [(v["slot"], v["filesystem"], v["status"], v["length"]) for v in lvs] == [
        (f"lvm:{disk.group}/home", "Ext4", "ok", 12 << 20), (f"lvm:{disk.group}/media", "FAT16", "ok", 6 << 20)]
    assert all(f"in volume {disk.pv_index}" in v["description"] for v in lvs)


def test_every_file_of_every_logical_volume_with_fls_hashes(lvm_run):
    disk, run = lvm_run
    lvs = {v["slot"].rsplit("/", 1)[1]: v["index"] for v in run.volumes if v["volume_system"] == "lvm"}
    for name, truth in disk.truths.items():
        rows = {(r["path"], inode_string(r)): r for r in run.files if r["partition"] == lvs[name]}
        want = {(e.path, e.inode) for e in truth.entries}
        assert want <= set(rows), (name, want - set(rows))
        for inode, digests in truth.digests.items():
            entry = next(e for e in truth.entries if e.inode == inode)
            assert rows[(entry.path, inode)]["md5"] == digests.md5, (name, entry.path)
        assert any(p.endswith("deep/data.txt") for p, _ in rows)
