"""The archives one carve chunk finds are expanded by one task (issue 11: a task costs the cluster
more than a small archive), each keeping its own members and status; an archive of the batch that
cannot be expanded costs the others nothing. The run is driven in this process, one task at a time
(what is tested is the planning and the folding of results, which a cluster only schedules)."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

import pyarrow.parquet as pq
from triage_test_fixtures.archives import zip_bytes

from triage.finish import finalize
from triage.runstate import ImageRun
from triage.settings import RunSettings
from triage.workers.archives import ArchiveBatch, ArchiveRef, expand_archives
from triage.workers.image import identify

pytestmark = pytest.mark.skipif(shutil.which("sfdisk") is None, reason="needs sfdisk")

SLOT = 1 << 18  # each archive starts on its own 256 KiB boundary, far apart


def _members(i: int) -> dict[str, bytes]:
    return {f"doc{i}/a.txt": f"archive {i} first member ".encode() * 40,
            f"doc{i}/b.txt": f"archive {i} second member ".encode() * 40}


def _corrupt_zip() -> bytes:
    """A zip whose structure a carver accepts but whose one member's deflate stream is garbage."""
    data = bytearray(zip_bytes({"broken.txt": b"will not inflate " * 200}))
    start = 30 + len("broken.txt")  # the member's compressed bytes follow its local header
    data[start:start + 40] = b"\xff" * 40
    return bytes(data)


def _disk(path: Path, archives: list[bytes]) -> list[int]:
    """An MBR disk whose one partition has no filesystem (so all of it is carved) holding the archives."""
    offsets = [(1 << 20) + SLOT * (i + 1) for i in range(len(archives))]
    image = bytearray((1 << 20) + SLOT * (len(archives) + 2))
    for off, data in zip(offsets, archives):
        assert len(data) < SLOT
        image[off:off + len(data)] = data
    path.write_bytes(bytes(image))
    subprocess.run(["sfdisk", "-q", str(path)], input=b"start=2048, type=83\n", check=True)
    return offsets


def _drive(run: ImageRun) -> list[str]:
    kinds = []
    while not run.finished:
        for task in run.take(1):
            kinds.append(task.kind.NAME)
            run.task_done(task, task.kind.func(task.arg))
    return kinds


def _carved_zips(out: Path) -> tuple[dict[str, dict], list[str]]:
    """The run's rows by path, and the paths of the carved zips in image order."""
    rows = {r["path"]: r for r in pq.read_table(out / "files.parquet").to_pylist()}
    return rows, sorted(p for p, r in rows.items() if r["source"] == "carved" and r["mime"] == "application/zip")


def test_one_expand_task_per_chunk_with_every_member(tmp_path: Path) -> None:
    _disk(tmp_path / "disk.img", [zip_bytes(_members(i)) for i in range(4)])
    run = ImageRun(tmp_path / "disk.img", tmp_path / "out", carve="all", home=tmp_path / "home")
    kinds = _drive(run)
    assert kinds.count("carve") == 1
    assert kinds.count("expand-batch") == 1 and "expand" not in kinds
    finalize(run)
    rows, carved = _carved_zips(tmp_path / "out")
    assert len(carved) == 4
    for i, zpath in enumerate(carved):
        for name in _members(i):
            member = rows[f"{zpath}/{name}"]
            assert member["container"] == zpath and member["status"] == "ok"
        assert rows[zpath]["status"] == "ok"


def test_a_corrupt_archive_of_the_batch_costs_the_others_nothing(tmp_path: Path) -> None:
    bomb = zip_bytes({"zeros.bin": bytes(64 << 20)})  # declares 1000 times its size: a bomb, not expanded
    archives = [zip_bytes(_members(0)), bomb, zip_bytes(_members(2)), _corrupt_zip()]
    _disk(tmp_path / "disk.img", archives)
    run = ImageRun(tmp_path / "disk.img", tmp_path / "out", carve="all", home=tmp_path / "home")
    assert _drive(run).count("expand-batch") == 1
    finalize(run)
    rows, carved = _carved_zips(tmp_path / "out")
    assert len(carved) == 4
    assert rows[carved[1]]["status"].startswith("archive not fully expanded: member zeros.bin declares ratio")
    broken = rows[f"{carved[3]}/broken.txt"]
    assert broken["status"].startswith("unreadable: "), broken["status"]  # a member that does not inflate
    for i in (0, 2):
        assert rows[carved[i]]["status"] == "ok"
        assert all(rows[f"{carved[i]}/{name}"]["status"] == "ok" for name in _members(i))


def test_an_archive_failing_unexpectedly_gets_its_task_failure_status(tmp_path: Path) -> None:
    """An error the expander does not expect (here: an image that is gone) is that archive's status,
    the one its own failed task would have given it; the batch's other archives are expanded."""
    good = tmp_path / "good.img"
    offsets = _disk(good, [zip_bytes(_members(0))])
    gone = tmp_path / "gone.img"
    _disk(gone, [zip_bytes(_members(1))])
    gone_ref = identify(gone)
    gone.unlink()
    settings = RunSettings.from_config(None, False)
    opts, lim = settings.options, settings.archives
    size = len(zip_bytes(_members(0)))
    refs = (ArchiveRef(0, "$Carved/a.zip", size, "application/zip", True, opts, lim, image=identify(good),
                       offset=offsets[0]),
            ArchiveRef(0, "$Carved/b.zip", size, "application/zip", True, opts, lim, image=gone_ref,
                       offset=offsets[0]))
    result = expand_archives(ArchiveBatch(("expand-carved-a", "expand-carved-b"), refs)).to_pylist()
    a = [r for r in result if r["archive"] == "expand-carved-a"]
    b = [r for r in result if r["archive"] == "expand-carved-b"]
    assert sorted(r["path"] for r in a) == sorted(f"$Carved/a.zip/{n}" for n in _members(0))
    assert [r["source"] for r in b] == ["archive status"]
    assert b[0]["status"].startswith("archive not expanded: expand task failed: ImageError: "), b[0]["status"]


def test_an_interrupted_run_resumes_the_batch_to_identical_tables(tmp_path: Path) -> None:
    _disk(tmp_path / "disk.img", [zip_bytes(_members(i)) for i in range(3)])
    reference = ImageRun(tmp_path / "disk.img", tmp_path / "reference", carve="all", home=tmp_path / "home")
    _drive(reference)
    finalize(reference)

    first = ImageRun(tmp_path / "disk.img", tmp_path / "out", carve="all", home=tmp_path / "home")
    while "expand-carved-" not in "".join(first.expanded):  # stop right after the batch's result is kept
        for task in first.take(1):
            first.task_done(task, task.kind.func(task.arg))
    first.abort()
    second = ImageRun(tmp_path / "disk.img", tmp_path / "out", carve="all", home=tmp_path / "home")
    assert "expand-batch" not in _drive(second)  # restored from its checkpoint with the carve chunk's
    assert len([n for n in second.expanded if n.startswith("expand-carved-")]) == 3
    finalize(second)
    for table in ("files.parquet", "volumes.parquet"):
        assert (tmp_path / "out" / table).read_bytes() == (tmp_path / "reference" / table).read_bytes()


def test_a_chunk_dense_with_archives_gets_several_bounded_batches(tmp_path: Path, monkeypatch) -> None:
    from triage import archiveplan

    monkeypatch.setattr(archiveplan, "BATCH", 2)  # 5 archives, at most 2 a task: 3 batches, none lost
    _disk(tmp_path / "disk.img", [zip_bytes(_members(i)) for i in range(5)])
    run = ImageRun(tmp_path / "disk.img", tmp_path / "out", carve="all", home=tmp_path / "home")
    assert _drive(run).count("expand-batch") == 3
    finalize(run)
    rows, carved = _carved_zips(tmp_path / "out")
    assert len(carved) == 5
    for i, zpath in enumerate(carved):
        assert all(rows[f"{zpath}/{name}"]["container"] == zpath for name in _members(i))
