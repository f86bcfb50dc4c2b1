"""``triage run`` resumes: the same command after a crash continues from the finished tasks.

The run is killed (its whole process group, cluster included, as a crash or an OOM kill
would) once it has checkpointed some content tasks; the same command then finishes it.
Its tables are byte-identical to an uninterrupted run's, it says how many bytes came
from the checkpoints, and the work folder is gone once the results are complete.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from triage_test_fixtures.backlog import build_busy_disk, tool_env, triage
from triage_test_fixtures.cli import triage_command

pytestmark = pytest.mark.slow

#: many small content tasks, so a run has checkpoints well before it ends
ENV = {"DASK_TRIAGE__CONTENT__BATCH_FILES": "10", "DASK_TRIAGE__CARVE__MODE": "none"}


def _run(image: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*triage_command(), "run", str(image), "-o", str(out), "--workers", "1",
                             "--no-progress", *extra], env={**tool_env(out.parent / "home"), **ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_a_killed_run_resumes_to_the_same_tables(tmp_path: Path) -> None:
    image = build_busy_disk(tmp_path / "disk", 5, size_mib=48, pictures=40, others=500, big_mib=())
    reference = tmp_path / "reference"
    triage(None, "run", image, "-o", reference, "--workers", "1", "--no-progress", env=ENV, timeout=600)

    out = tmp_path / "out"
    proc = _run(image, out)
    work = out / ".work"
    deadline = time.monotonic() + 300
    while len(list(work.glob("content-*.arrow"))) < 5:
        assert proc.poll() is None, f"the run ended before it could be interrupted:\n{proc.stderr.read()}"
        assert time.monotonic() < deadline, "no content checkpoints after 300 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    done_before = len(list(work.glob("content-*.arrow")))
    assert not (out / "summary.json").exists() and done_before >= 5
    shutil.copytree(work, tmp_path / "saved-work")

    again = _run(image, out)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode in (0, 4), stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_bytes"] > 0
    for name in ("files.parquet", "volumes.parquet"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert json.loads((reference / "summary.json").read_text())["resumed_bytes"] == 0
    assert not work.exists()  # complete: the checkpoints are gone
    assert not list(out.glob(".partial-*"))

    # --fresh ignores checkpoints even when they would fit
    shutil.copytree(tmp_path / "saved-work", work)
    fresh = _run(image, out, "--fresh", "--overwrite")
    stdout, stderr = fresh.communicate(timeout=600)
    assert fresh.returncode in (0, 4), stderr
    assert json.loads((out / "summary.json").read_text())["resumed_bytes"] == 0
    assert (out / "files.parquet").read_bytes() == (reference / "files.parquet").read_bytes()


def test_checkpoints_of_another_plan_are_discarded(tmp_path: Path) -> None:
    image = build_busy_disk(tmp_path / "disk", 6, size_mib=16, pictures=5, others=40, big_mib=())
    out = tmp_path / "out"
    work = out / ".work"
    work.mkdir(parents=True)
    (work / "plan.json").write_text("{}")  # a plan of another run: discarded, never mixed
    (work / "content-1-00000.arrow").write_bytes(b"not a checkpoint")
    r = triage(None, "run", image, "-o", out, "--workers", "1", "--no-progress", "--json", env=ENV, timeout=300,
               check=False)
    assert r.returncode in (0, 4), r.stderr
    assert json.loads(r.stdout)[0]["resumed_bytes"] == 0 and not work.exists()
