"""Phone extractions end to end: ``triage run`` and ``triage submit``/``serve`` on a tar, tar.gz, zip,
UFDR or folder, as a user runs them (subprocesses, a real cluster, a real dispatcher).

Every member row is checked against hashes computed by the fixture builder; the
source's own md5/sha256 against ``hashlib`` over the file; nothing may be written
beside the output folder, nor read outside the source (a link points at a file
whose content must never show up in any hash).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from triage_test_fixtures.dashboard import DashboardProcess, free_port
from triage_test_fixtures.extractions import OUTSIDE_CONTENT, build_folder, build_tar, build_zip
from triage_test_fixtures.shared import DFXML_SCHEMA

OUTSIDE = {hashlib.new(a, OUTSIDE_CONTENT).hexdigest() for a in ("md5", "sha1", "sha256")}
REPORTS = ("report.html", "report.csv", "report.dfxml", "report.case.jsonld")
BUILDERS = {
    "tar": lambda d: build_tar(d / "android.tar"),
    "tgz": lambda d: build_tar(d / "ios.tgz", ios=True, gz=True),
    "zip": lambda d: build_zip(d / "android.zip"),
    "ufdr": lambda d: build_zip(d / "phone.ufdr", ufdr=True),
    "folder": lambda d: build_folder(d / "phone"),
}
VOLUME_SYSTEMS = {"tar": "tar", "tgz": "tar.gz", "zip": "zip", "ufdr": "ufdr", "folder": "folder"}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (not following links) with its size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, n))
            out[os.path.relpath(os.path.join(dirpath, n), root)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_run_triages_an_extraction_as_a_source(triage_cli, tmp_path, kind):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    ext = BUILDERS[kind](evidence)
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    proc = triage_cli("run", ext.path, "-o", out, "--no-progress", "--json")
    assert proc.returncode == 0, proc.stderr
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out")} == before  # evidence untouched, nothing beside

    files = {r["path"]: r for r in pq.read_table(out / "files.parquet").to_pylist()}
    for e in ext.entries:
        row = files[e.shown]
        assert row["source"] == "logical" and row["score"] is not None and row["tier"]
        if e.kind == "r":
            assert {a: row[a] for a in ("md5", "sha1", "sha256")} == e.hashes(), e.shown
        if e.kind == "l":
            assert row["type"] == "l/l" and "not followed" in row["status"]
    assert not OUTSIDE & {h for r in files.values() for h in (r["md5"], r["sha1"], r["sha256"])}
    assert not any("outside-secret" in p and not files[p]["type"] == "l/l" for p in files)

    (vol,) = pq.read_table(out / "volumes.parquet").to_pylist()
    assert vol["volume_system"] == VOLUME_SYSTEMS[kind] and vol["status"] == "ok"
    assert vol["description"].startswith(f"{ext.shape} file system extraction") and vol["files"] == len(files)
    image = json.loads((out / "image.json").read_text())
    assert image["format"] == kind
    if kind != "folder":
        blob = ext.path.read_bytes()
        assert (image["md5"], image["sha256"]) == (hashlib.md5(blob).hexdigest(), hashlib.sha256(blob).hexdigest())
    summary = json.loads(proc.stdout)[0]
    assert summary["files"]["logical"] == len(files) and summary["ranking"]["tier"]
    assert all((out / r).is_file() for r in REPORTS)
    assert not any(p.endswith("outside-secret.txt") for p in os.listdir(out))
    if shutil.which("xmllint") and DFXML_SCHEMA.is_file():  # the DFXML report stays valid with member rows
        check = subprocess.run(["xmllint", "--noout", "--schema", str(DFXML_SCHEMA), str(out / "report.dfxml")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr[-2000:]


def test_output_inside_a_folder_source_is_refused(triage_cli, tmp_path):
    ext = build_folder(tmp_path / "phone")
    proc = triage_cli("run", ext.path, "-o", ext.path / "results", "--no-progress", cluster=False)
    assert proc.returncode == 3 and "inside the folder" in proc.stderr
    assert not (ext.path / "results").exists()


@pytest.mark.slow
def test_a_truncated_tar_and_a_broken_zip_are_problems_not_crashes(triage_cli, tmp_path):
    ext = build_tar(tmp_path / "a.tar")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(ext.path.read_bytes()[:-9000])
    z = build_zip(tmp_path / "a.zip")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(z.path.read_bytes()[:-100])
    proc = triage_cli("run", cut, broken, "-o", tmp_path / "out", "--no-progress", "--json")
    assert proc.returncode == 4, proc.stderr
    by_image = {Path(s["image"]["path"]).name: s for s in json.loads(proc.stdout)}
    assert any("cut.tar: partition 0 (byte 0): truncated or corrupt" in p for p in by_image["cut.tar"]["problems"])
    assert by_image["cut.tar"]["files"]["hashed"] >= 3  # the members before the cut
    (vol,) = pq.read_table(tmp_path / "out" / "broken.zip" / "volumes.parquet").to_pylist()
    assert vol["status"].startswith("zip central directory unreadable") and "recovered from their local headers" in \
        vol["status"] and vol["files"] >= 9  # every member but the cut end's


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "triage.cli.main", *args, "--home", str(home)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.slow
def test_submit_and_serve_an_extraction_like_a_disk(tmp_path):
    """Queue, known-item sets, escalation, ranking, reports and the dashboard, for a phone extraction."""
    home = tmp_path / "home"
    ext = build_tar(tmp_path / "phone.tar")
    jpg = ext.entries[2]
    (tmp_path / "bad.md5").write_text(f"{jpg.hashes()['md5']}  seized.jpg\n")
    _cli(home, "hashsets", "import", str(tmp_path / "bad.md5"), "--name", "force-bad", "--category", "known-bad")
    job = _cli(home, "submit", str(ext.path), "--case", "OP-PHONE", "--exhibit", "P/1",
               "--priority", "low").stdout.strip()
    serve = subprocess.Popen([sys.executable, "-m", "triage.cli.main", "serve", "--home", str(home), "--workers", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            (st,) = json.loads(_cli(home, "status", "--json").stdout)["jobs"]
            if st["state"] in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
    assert st["state"] == "done", st
    assert st["known_bad_hits"] == 1
    res = json.loads(_cli(home, "results", job, "--json").stdout)
    results = Path(res["results"][0]["parquet"]["files.parquet"]).parent
    rows = {r["path"]: r for r in pq.read_table(results / "files.parquet").to_pylist()}
    assert rows[jpg.shown]["known"] == "known-bad" and rows[jpg.shown]["tier"] == "notable"
    assert all((results / r).is_file() for r in REPORTS)
    assert jpg.shown in (results / "report.csv").read_text()
    actions = [r["action"] for r in json.loads(_cli(home, "audit", "show", "--json").stdout)]
    assert {"submit", "start", "escalate"} <= set(actions)  # a known-bad hit raises its case, as for a disk
    dash = DashboardProcess(home, f"127.0.0.1:{free_port()}", tmp_path / "dash.log").start()
    try:
        with urllib.request.urlopen(f"http://{dash.bind}/jobs/{job}", timeout=30) as resp:
            page = resp.read().decode()
    finally:
        dash.stop()
    assert "phone.tar" in page and "Android file system extraction" in page


def test_a_tar_gz_is_planned_as_a_few_stream_tasks(tmp_path):
    """The run's own planning (no cluster: each task's function called in turn, as a driver would)."""
    import dask.config

    from triage.finish import finalize
    from triage.runstate import ImageRun

    src = tmp_path / "phone.tgz"
    members = {f"data/media/0/DCIM/f{i:02d}.bin": os.urandom(10_000) for i in range(12)}
    with tarfile.open(src, "w:gz") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    out = tmp_path / "out"
    with dask.config.set({"triage.content.batch-bytes": "4KiB"}):  # 120 KB of members: bound by STREAM_TASKS
        run = ImageRun(src, out, carve="none")
        member_tasks = 0
        while run.todo:
            for task in run.take():
                member_tasks += task.kind is run_kind("members")
                run.task_done(task, task.kind.func(task.arg))
        assert member_tasks == 4
        assert finalize(run).exit_code == 0
    rows = {r["path"]: r for r in pq.read_table(out / "files.parquet").to_pylist()}
    assert {p: rows[p]["sha256"] for p in members} == {p: hashlib.sha256(d).hexdigest() for p, d in members.items()}


def run_kind(name: str):
    from triage.tasks import KINDS

    return KINDS.get(name)


def _drive(run, stop_after: int | None = None) -> None:
    """Each task's function called in turn, as a driver would; ``stop_after`` tasks, then stop."""
    done = 0
    while run.todo:
        for task in run.take(1):
            run.task_done(task, task.kind.func(task.arg))
            done += 1
            if stop_after is not None and done >= stop_after:
                return


def test_an_interrupted_extraction_resumes_to_byte_identical_tables(tmp_path):
    import dask.config

    from triage.finish import finalize
    from triage.runstate import ImageRun

    ext = build_zip(tmp_path / "phone.zip")
    with dask.config.set({"triage.content.batch-files": 2}):
        whole = ImageRun(ext.path, tmp_path / "whole", carve="none")
        _drive(whole)
        finalize(whole)
        first = ImageRun(ext.path, tmp_path / "out", carve="none")
        _drive(first, stop_after=4)  # hash, listing and two member batches
        first.pending = 0
        first.abort()
        second = ImageRun(ext.path, tmp_path / "out", carve="none")
        assert second.resumed_bytes > 0
        _drive(second)
        finalize(second)
    assert (tmp_path / "out" / "files.parquet").read_bytes() == (tmp_path / "whole" / "files.parquet").read_bytes()
    assert (tmp_path / "out" / "volumes.parquet").read_bytes() == (tmp_path / "whole" / "volumes.parquet").read_bytes()
