"""A run stopped after some archives were expanded resumes from their checkpoints to the same
tables. The tasks run in this process, one at a time in the run's own order (no cluster: what is
tested is the run's planning and checkpoints, which a cluster only schedules)."""

from __future__ import annotations

from pathlib import Path

import pytest
from triage_test_fixtures.archives import evidence_files
from triage_test_fixtures.mkfs import make_ext, missing_tools

from triage.finish import finalize
from triage.runstate import ImageRun

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(missing_tools("ext4")), reason="needs e2fsprogs")]


def _drive(run: ImageRun, stop_after_expansions: int | None = None) -> bool:
    """Run tasks until done (True) or until that many expand tasks have finished (False)."""
    done = 0
    while not run.finished:
        for task in run.take(1):
            run.task_done(task, task.kind.func(task.arg))
            done += task.kind.NAME == "expand"
            if stop_after_expansions is not None and done >= stop_after_expansions:
                return False
    return True


def test_expansions_resume_to_identical_tables(tmp_path: Path) -> None:
    files, _ = evidence_files()
    files = {k: v for k, v in files.items() if k not in ("home/bomb.zip", "home/many.tar", "home/many.zip")}
    image = tmp_path / "disk.img"
    make_ext(image, 32 << 20, files)
    ref_out = tmp_path / "reference"
    reference = ImageRun(image, ref_out, home=tmp_path / "home")
    assert _drive(reference)
    finalize(reference)

    out = tmp_path / "resumed"
    first = ImageRun(image, out, home=tmp_path / "home")
    assert not _drive(first, stop_after_expansions=3)
    first.abort()  # as a crash leaves it: the checkpoints stay
    second = ImageRun(image, out, home=tmp_path / "home")
    restored = set(second.expanded)
    assert len(restored) >= 3  # applied from checkpoints when the content results that plan them were
    assert _drive(second)
    result = finalize(second)
    assert result.summary["resumed_bytes"] > 0
    assert (out / "files.parquet").read_bytes() == (ref_out / "files.parquet").read_bytes()
    assert result.summary["files"]["archive_members"] > 20
