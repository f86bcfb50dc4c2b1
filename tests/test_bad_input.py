"""`triage run` on input that is missing, not an image, damaged or hostile, driven as a user would: the CLI.

Damaged images are built from the correct ones (tests/fixtures/bad_mkfs.py); what
TSK can still read of them is the oracle for what must still be triaged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from triage_test_fixtures import mkfs
from triage_test_fixtures.cli import triage_command
from triage_test_fixtures.bad_images import hostile_paths
from triage_test_fixtures.results import inode_string, load, read_parquet
from triage_test_fixtures.tsk_truth import ImageTruth

pytestmark = pytest.mark.slow


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    return lines[0]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: relative path -> (size, mtime_ns)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + dirnames:
            p = Path(dirpath) / n
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def _assert_partition_matches_fls(truth: ImageTruth, files: list[dict[str, Any]], part: int) -> None:
    """All fls entries of ``part`` are rows, and every hashed one has icat's sha256."""
    fs = truth.filesystems[part]
    rows = {(r["path"], inode_string(r), r["deleted"]): r for r in files if r["partition"] == part}
    missing = [e for e in fs.entries if (e.path, e.inode, e.deleted) not in rows]
    assert not missing, f"partition {part}: fls entries missing: {missing[:10]}"
    wrong = [(e.path, r["sha256"], fs.digests[e.inode].sha256) for e in fs.entries
             if e.inode in fs.digests and (r := rows[(e.path, e.inode, e.deleted)])["sha256"] != fs.digests[e.inode].sha256]
    assert not wrong, f"partition {part}: sha256 differs from icat: {wrong[:10]}"


# ---------------------------------------------------------------- not an image at all


def test_missing_path_exits_3_with_one_line(triage_cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "seized-laptop.E01"
    out = tmp_path / "out"
    proc = triage_cli("run", missing, "-o", out, cluster=False, timeout=60)
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    line = _one_line(proc.stderr)
    assert str(missing) in line, line
    assert not (out / "files.parquet").exists()


def test_text_file_exits_3(triage_cli, tmp_path: Path) -> None:
    notes = tmp_path / "case-notes.txt"
    notes.write_text("Exhibit A: one laptop, seized 2024-03-01.\n" * 200)
    proc = triage_cli("run", notes, "-o", tmp_path / "out", timeout=120)
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    assert str(notes) in _one_line(proc.stderr)
    assert not (tmp_path / "out" / "files.parquet").exists()


def test_usage_error_exits_2(triage_cli, tmp_path: Path) -> None:
    proc = triage_cli("run", tmp_path / "x.raw", cluster=False, timeout=60)  # no -o
    assert proc.returncode == 2, (proc.returncode, proc.stderr)


def test_cut_e01_exits_3_with_one_line(e01_image: ImageTruth, triage_cli, tmp_path: Path) -> None:
    """An E01 whose segment stops after its header: an unreadable image, not a crash."""
    cut = tmp_path / "cut.E01"
    with open(e01_image.path, "rb") as fh:
        cut.write_bytes(fh.read(4096))
    proc = triage_cli("run", cut, "-o", tmp_path / "out")
    assert proc.returncode == 3, (proc.returncode, proc.stderr[-2000:])
    assert str(cut) in _one_line(proc.stderr)
    assert not (tmp_path / "out" / "files.parquet").exists()


def test_e01_with_a_missing_segment(e01_multi_image: ImageTruth, triage_cli, tmp_path: Path) -> None:
    """Segment .E03 of five is gone: a one-line error (3), or what can be read triaged and flagged (4)."""
    for seg in e01_multi_image.segments:
        if not seg.name.endswith(".E03"):
            (tmp_path / seg.name).write_bytes(seg.read_bytes())
    first = tmp_path / e01_multi_image.path.name
    proc = triage_cli("run", first, "-o", tmp_path / "out")
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (3, 4), (proc.returncode, proc.stderr[-2000:])
    if proc.returncode == 3:
        assert first.name in _one_line(proc.stderr)
    else:
        assert load(None, tmp_path / "out").summary["problems"]


# ---------------------------------------------------------------- damaged images


def _run_cli(triage_cli, image: Path, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    proc = triage_cli("run", image, "-o", out, *extra)
    assert (out / "files.parquet").exists(), (proc.returncode, proc.stdout, proc.stderr)
    return proc, load(None, out)


def test_truncated_image(truncated_image: ImageTruth, triage_cli, tmp_path: Path) -> None:
    proc, run = _run_cli(triage_cli, truncated_image.path, tmp_path / "out")
    assert proc.returncode == 4, (proc.returncode, proc.stdout, proc.stderr)
    damaged = truncated_image.notes["damaged"]
    for part in truncated_image.filesystems:  # the partitions before the cut
        assert run.volume(part)["status"] == "ok"
        _assert_partition_matches_fls(truncated_image, run.files, part)
    v = run.volume(damaged)
    assert v["status"] != "ok", f"the partition cut in half is reported as {v['status']!r}"
    assert [p for p in run.summary["problems"] if f"partition {damaged}" in p], run.summary["problems"]


def test_partition_table_past_the_end(past_end_image: ImageTruth, triage_cli, tmp_path: Path) -> None:
    proc, run = _run_cli(triage_cli, past_end_image.path, tmp_path / "out")
    assert proc.returncode == 4, (proc.returncode, proc.stdout, proc.stderr)
    parts = past_end_image.notes["partitions"]
    assert run.volume(parts["fat"])["status"] == "ok"
    _assert_partition_matches_fls(past_end_image, run.files, parts["fat"])
    for key in ("overhang", "beyond"):
        v = run.volume(parts[key])
        assert v["status"] != "ok", f"{key} partition (past the image's end) reported as {v['status']!r}"
    assert not [r for r in run.files if r["partition"] == parts["beyond"] and r["source"] != "carved"]


def test_zeroed_superblock(bad_superblock_image: ImageTruth, triage_cli, tmp_path: Path) -> None:
    proc, run = _run_cli(triage_cli, bad_superblock_image.path, tmp_path / "out")
    damaged = bad_superblock_image.notes["damaged"]
    v = run.volume(damaged)
    assert v["filesystem"] is None and v["status"] != "ok", v
    assert not [r for r in run.files if r["partition"] == damaged and r["source"] != "carved"]
    for part in bad_superblock_image.filesystems:
        assert run.volume(part)["status"] == "ok"
        _assert_partition_matches_fls(bad_superblock_image, run.files, part)
    assert proc.returncode == 4, (proc.returncode, proc.stdout, proc.stderr)
    assert [p for p in run.summary["problems"] if f"partition {damaged}" in p], run.summary["problems"]


def test_directory_loop_terminates_and_is_reported(loop_image: ImageTruth, triage_cli, tmp_path: Path) -> None:
    proc, run = _run_cli(triage_cli, loop_image.path, tmp_path / "out")
    assert proc.returncode in (0, 4), (proc.returncode, proc.stderr)
    for _, path in loop_image.marks["loop"]:
        rows = [r for r in run.files if r["path"] == path]
        assert len(rows) == 1 and rows[0]["type"] == "d/d", (path, rows)
        assert "loop" in rows[0]["status"].lower(), f"{path}: status {rows[0]['status']!r} does not report the loop"
        assert not [r for r in run.files if r["path"].startswith(path + "/")], f"walked into the loop at {path}"
    fs = loop_image.filesystems[0]
    for _, path in loop_image.marks["plain"]:
        e = fs.find(path)[0]
        assert run.row(0, path)["sha256"] == fs.digests[e.inode].sha256, path
    assert len(run.files) < 100


# ---------------------------------------------------------------- hostile names


def test_hostile_names_are_rows_and_nothing_escapes(hostile_image: ImageTruth, triage_cli, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    out = work / "case" / "out"
    sentinel = Path("/tmp/pwned.txt")
    existed = sentinel.exists()
    before = _tree(tmp_path)
    proc = triage_cli("run", hostile_image.path, "-o", out, cwd=work)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    after = _tree(tmp_path)
    outside = sorted(k for k in set(after) - set(before) if not (tmp_path / k).resolve().is_relative_to(out.resolve())
                     and not out.resolve().is_relative_to((tmp_path / k).resolve()))
    assert not outside, f"written outside OUT: {outside}"
    assert not any("pwned" in k or "escape" in k for k in _tree(out)), _tree(out)
    assert sentinel.exists() == existed
    files = read_parquet(out / "files.parquet")
    fs = hostile_image.filesystems[0]
    by_path = {r["path"]: r for r in files}
    for path in hostile_paths():
        assert path in by_path, f"no row for hostile name {path!r}"
        r = by_path[path]
        e = fs.find(path)[0]
        assert r["name"] == path.removeprefix("inbox/"), (r["name"], path)
        assert r["sha256"] == fs.digests[e.inode].sha256, path
    assert len([r for r in files if r["source"] != "carved"]) == len(fs.entries)


# ---------------------------------------------------------------- the output directory


def test_existing_results_are_not_replaced_without_overwrite(bare_ext4_image: ImageTruth, triage_cli,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = triage_cli("run", bare_ext4_image.path, "-o", out)
    assert first.returncode == 0, first.stderr
    snapshot = _tree(out)
    contents = {k: (out / k).read_bytes() for k in snapshot if (out / k).is_file()}
    time.sleep(0.05)
    again = triage_cli("run", bare_ext4_image.path, "-o", out)
    assert again.returncode == 3, (again.returncode, again.stderr)
    assert str(out) in _one_line(again.stderr)
    assert _tree(out) == snapshot, "existing results were touched"
    assert {k: (out / k).read_bytes() for k in contents} == contents
    forced = triage_cli("run", bare_ext4_image.path, "-o", out, "--overwrite", "--json")
    assert forced.returncode == 0, forced.stderr
    summary = json.loads(forced.stdout)
    assert summary[0]["exit_code"] == 0
    assert (out / "files.parquet").read_bytes() == contents["files.parquet"]


def test_killed_run_leaves_no_files_parquet(triage_cli, tmp_path: Path) -> None:
    """SIGKILL mid-run (its own local cluster): OUT must not hold a files.parquet that looks complete."""
    missing = mkfs.missing_tools("ext4")
    if missing:
        pytest.skip(f"tool(s) not installed: {', '.join(missing)}")
    img = tmp_path / "big.ext4"
    mkfs.make_ext(img, 96 << 20, {
        "data/one.bin": mkfs.random_bytes(90, 40 << 20),
        "data/two.bin": mkfs.random_bytes(91, 30 << 20),
        **{f"many/f{i:03d}.txt": mkfs.text_bytes(i, 2) for i in range(200)},
    })
    out = tmp_path / "out"
    proc = subprocess.Popen(triage_command() + ["run", str(img), "-o", str(out), "--workers", "1", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    caught = False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_dir() and any(p.name.startswith(".") for p in out.iterdir()):
                caught = True
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()  # type: ignore[union-attr]
    assert caught, f"the run ended (rc {proc.returncode}) before its staging directory was seen"
    assert not (out / "files.parquet").exists(), "a killed run left OUT/files.parquet"
    assert not (out / "summary.json").exists(), "a killed run left OUT/summary.json"
    # what it left behind is hidden, and does not count as results: a new run into OUT works
    leftovers = [p.name for p in out.iterdir()]
    assert all(n.startswith(".") for n in leftovers), leftovers
    rerun = triage_cli("run", img, "-o", out)
    assert rerun.returncode == 0, (rerun.returncode, rerun.stderr)
    assert read_parquet(out / "files.parquet")
