"""`triage run` on a disk whose NTFS partition holds two Volume Shadow Copies: each snapshot is a volume of
its own (``vss:1`` oldest) whose deleted or changed files are rows with the ground truth's md5s, files the
live volume still holds are not repeated, ``--no-vss`` (run and submit) skips them, a damaged store is one
line naming the volume while the live volume is triaged in full, and the results are byte-identical."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from triage.dispatcher import Dispatcher
from triage.queue import Queue
from triage.workers.vss import DIFF_AREA_SUFFIX, snapshot_index
from triage_test_fixtures import vss
from triage_test_fixtures.results import read_parquet

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("mkntfs") is None or shutil.which("sfdisk") is None,
                                                   reason="needs ntfs-3g and fdisk")]
PART = 2  # mmls index of the NTFS partition (0: table, 1: space before it)


@pytest.fixture(scope="module")
def disk(tmp_path_factory) -> vss.VssDisk:
    return vss.build_vss_disk(tmp_path_factory.mktemp("vssdisk"))


@pytest.fixture(scope="module")
def run(disk, triaged):
    return triaged(disk.path)


def _by_partition(rows: list[dict], partition: int) -> dict[str, dict]:
    return {r["path"]: r for r in rows if r["partition"] == partition}


def test_each_snapshot_is_a_volume_under_its_ntfs_partition(run, disk):
    assert run.result.exit_code == 0, run.result.problems
    snaps = [v for v in run.volumes if v["layer"] == "vss"]
    assert [(v["index"], v["slot"], v["parent"], v["filesystem"], v["status"], v["extents"]) for v in snaps] == [
        (snapshot_index(PART, 0), "vss:1", PART, "NTFS", "ok", []),
        (snapshot_index(PART, 1), "vss:2", PART, "NTFS", "ok", [])]
    for v, snap in zip(snaps, disk.volume.snapshots):
        created = snap.created.isoformat().replace("+00:00", "Z")
        assert f"created {created}" in v["description"] and str(snap.store_id) in v["description"]
        assert (v["start"], v["length"]) == (run.volume(PART)["start"], run.volume(PART)["length"])


def test_deleted_and_changed_files_with_the_ground_truths_md5s_and_nothing_unchanged(run, disk):
    live = _by_partition(run.files, PART)
    for n, snap in enumerate(disk.volume.snapshots):
        rows = _by_partition(run.files, snapshot_index(PART, n))
        assert {r["source"] for r in rows.values()} == {f"vss:{n + 1}"}
        files = {p: r["md5"] for p, r in rows.items() if not p.startswith("$")}
        # every file of the snapshot whose content the live volume does not hold, with icat's md5 of that state
        want = {name: md5 for name, md5 in snap.md5.items() if name not in disk.volume.unchanged}
        assert files == want, n
        assert all(r["offset"] is None and r["status"] == "ok" for r in rows.values())
    assert set(_by_partition(run.files, snapshot_index(PART, 0))) >= {"draft.txt", "edit.txt", "gone.txt"}
    # not repeated: keep.txt is the live volume's (same inode, size, hashes); the stores' own files are left out
    for n in range(2):
        assert "keep.txt" not in _by_partition(run.files, snapshot_index(PART, n))
    assert live["keep.txt"]["md5"] == disk.volume.snapshots[0].md5["keep.txt"]
    assert not any(r["path"].endswith(DIFF_AREA_SUFFIX) for r in run.files if r["source"].startswith("vss"))
    assert live["edit.txt"]["md5"] not in {s.md5["edit.txt"] for s in disk.volume.snapshots}
    assert run.summary["files"]["vss"] == sum(1 for r in run.files if r["source"].startswith("vss:"))
    assert all(r["score"] is not None for r in run.files)  # ranked like every row
    # what only a snapshot still holds is deleted history: the default rules say so on every such row
    for r in run.files:
        why = {x["rule"]: x["reason"] for x in r["reasons"]}
        assert ("shadow-copy" in why) == r["source"].startswith("vss:"), r["path"]
        if "shadow-copy" in why:
            assert why["shadow-copy"].startswith(f"only in Volume Shadow Copy {r['source']}:")


def test_no_vss_skips_them_and_results_are_byte_identical(run, disk, triage_cli, tmp_path):
    again = tmp_path / "again"
    res = triage_cli("run", disk.path, "-o", again, "--no-progress", "--no-reports", "--home", tmp_path / "home")
    assert res.returncode == 0, res.stderr
    for name in ("files.parquet", "volumes.parquet"):
        assert (again / name).read_bytes() == (run.out / name).read_bytes(), name
    skip = tmp_path / "novss"
    res = triage_cli("run", disk.path, "-o", skip, "--no-vss", "--no-progress", "--no-reports", "--home",
                     tmp_path / "home", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["files"]["vss"] == 0
    vols, files = read_parquet(skip / "volumes.parquet"), read_parquet(skip / "files.parquet")
    assert not [v for v in vols if v["layer"] == "vss"] and not [r for r in files if r["source"].startswith("vss")]
    assert _by_partition(files, PART).keys() == _by_partition(run.files, PART).keys()
    audit = [json.loads(x) for x in (tmp_path / "home" / "audit.log").read_text().splitlines()]
    assert [a["details"].get("vss.enabled") for a in audit if a["action"] == "run"] == [None, False]


def test_a_damaged_store_is_one_line_and_the_live_volume_is_complete(run, disk, triaged, tmp_path):
    damaged = triaged(vss.corrupt(disk, tmp_path, "block-list"))
    assert damaged.result.exit_code == 4
    lines = [p for p in damaged.result.problems if "Volume Shadow Copy" in p]
    assert lines == [f"{tmp_path / 'vss-corrupt-block-list.raw'}: partition {snapshot_index(PART, n)} "
                     f"(byte {disk.partition_offset}): Volume Shadow Copy {n + 1} of volume {PART}: store unreadable: "
                     "invalid store block list header identifier" for n in range(2)]
    assert damaged.result.problems == lines  # nothing else went wrong
    def live(t) -> set:  # every live row as in the intact run, but the store file the damage was written into
        return {(p, r["inode"], r["md5"] if not p.endswith(DIFF_AREA_SUFFIX) else None)
                for p, r in _by_partition(t.files, PART).items()}

    want = live(run)
    assert live(damaged) == want
    assert not [r for r in damaged.files if r["source"].startswith("vss")]

    gone = triaged(vss.corrupt(disk, tmp_path, "catalog"))
    [row] = [v for v in gone.volumes if v["layer"] == "vss"]
    assert row["slot"] == "vss" and "store catalog unreadable (invalid catalog header identifier)" in row["description"]
    assert gone.result.problems == [f"{tmp_path / 'vss-corrupt-catalog.raw'}: partition {row['index']} (byte "
                                    f"{disk.partition_offset}): Volume Shadow Copies of volume {PART}: store catalog "
                                    "unreadable: invalid catalog header identifier"]
    assert live(gone) == want


def test_submit_no_vss_reaches_the_dispatcher(disk, client, triage_cli, tmp_path):
    home = tmp_path / "home"
    ids = []
    for exhibit, extra in (("A", ["--no-vss"]), ("B", [])):
        sub = triage_cli("submit", disk.path, "--case", "VSS-1", "--exhibit", exhibit, "--priority", "high", "--json",
                         "--home", home, *extra, cluster=False)
        assert sub.returncode == 0, sub.stderr
        ids.append(json.loads(sub.stdout)["id"])
    Dispatcher(client, str(home), once=True).serve()
    with Queue.at(home) as q:
        jobs = [q.get(i) for i in ids]
    assert [j.state for j in jobs] == ["done", "done"], [j.failure for j in jobs]
    layers = [{v["layer"] for v in read_parquet(Path(j.results_dir) / "volumes.parquet")} for j in jobs]
    assert "vss" not in layers[0] and "vss" in layers[1]
    audit = [json.loads(x) for x in (home / "audit.log").read_text().splitlines()]
    assert [a["details"].get("vss.enabled") for a in audit if a["action"] == "submit"] == [False, None]


def test_a_resumed_run_gives_the_same_tables(run, disk, client, tmp_path):
    """Every task but the snapshot listing is restored from checkpoints (synchronously, while the partitions
    are replanned); the listing runs again and its snapshots' walks and content come from checkpoints too."""
    from triage.driver import Driver
    from triage.finish import finalize
    from triage.runstate import ImageRun

    out, work = tmp_path / "out", tmp_path / "work"
    first = ImageRun(disk.path, out, workdir=work)
    Driver(client).drive(first)
    first.abort()  # stopped before the merge: the checkpoints stay
    assert list(work.glob(f"*{snapshot_index(PART, 1)}*"))  # the snapshots' walks are among them
    second = ImageRun(disk.path, out, workdir=work)
    assert [t.name for t in second.todo] == [f"vss-{PART}"]  # all else restored
    Driver(client).drive(second)
    res = finalize(second)
    assert res.summary["resumed_bytes"] == second.bytes_total
    for name in ("files.parquet", "volumes.parquet"):
        assert (out / name).read_bytes() == (run.out / name).read_bytes(), name


@pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="needs cryptsetup")
def test_shadow_copies_inside_an_unlocked_volume(disk, triage_cli, tmp_path, read_rows):
    """Windows keeps its shadow copies inside BitLocker; here LUKS1 stands in (BitLocker cannot be made here):
    unlocked with --key, the NTFS inside is walked and so are its snapshots, read through the plaintext."""
    from triage_test_fixtures.encrypted import PASSPHRASE

    locked = vss.build_vss_luks_disk(tmp_path, disk.volume)
    out = tmp_path / "out"
    res = triage_cli("run", locked.path, "-o", out, "--no-progress", "--no-reports", "--home", tmp_path / "home",
                     "--key", f"{PART}=passphrase:{PASSPHRASE}")
    assert res.returncode == 0, res.stdout + res.stderr
    vols = {v["index"]: v for v in read_rows(out / "volumes.parquet")}
    assert (vols[PART]["layer"], vols[PART]["filesystem"]) == ("luks", "NTFS")
    assert [(v["slot"], v["parent"], v["status"]) for v in vols.values() if v["layer"] == "vss"] == [
        ("vss:1", PART, "ok"), ("vss:2", PART, "ok")]
    files = read_rows(out / "files.parquet")
    for n, snap in enumerate(disk.volume.snapshots):
        got = {p: r["md5"] for p, r in _by_partition(files, snapshot_index(PART, n)).items() if not p.startswith("$")}
        assert got == {k: v for k, v in snap.md5.items() if k not in disk.volume.unchanged}, n
