"""Fixtures of the cluster tests: real ``dask scheduler`` / ``dask worker`` processes on loopback
(:class:`~triage_test_fixtures.daskprocs.DaskProcs`), the CLI as a subprocess, and evidence for fault runs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from triage_test_fixtures.daskprocs import BIN, DaskProcs, free_port
from triage_test_fixtures.shared import CORPUS

__all__ = ["BIN", "CORPUS", "ENV", "DaskProcs", "free_port", "triage_cli"]


@pytest.fixture
def dask_procs(tmp_path: Path) -> Iterator[DaskProcs]:
    procs = DaskProcs(tmp_path)
    try:
        yield procs
    finally:
        procs.close()


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskProcs]:
    """A scheduler and two named single-thread workers (a, b), shared by a module's tests."""
    procs = DaskProcs(tmp_path_factory.mktemp("cluster"))
    try:
        procs.start_scheduler()
        procs.start_worker("a")
        procs.start_worker("b")
        yield procs
    finally:
        procs.close()


def triage_cli(*args: object, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    from triage_test_fixtures.cli import triage_command

    return subprocess.run([*triage_command(), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.fixture
def cli() -> Any:
    return triage_cli


# ---------------------------------------------------------------- evidence for fault and scale runs

#: small content tasks, so a 32 MiB disk is cut into dozens of tasks and a fault lands mid-run
ENV = {"DASK_TRIAGE__CONTENT__BATCH_BYTES": "1MiB", "DASK_TRIAGE__CONTENT__BATCH_FILES": "20"}


@pytest.fixture(scope="session")
def fault_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    from triage_test_fixtures import mkfs

    missing = [t for t in ("mke2fs", "sfdisk") if shutil.which(t, path=mkfs.TOOL_ENV["PATH"]) is None]
    if missing:
        pytest.skip(f"tool(s) not installed: {', '.join(missing)}")
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="session")
def small_disk(fault_dir: Path, backlog_disks: Path) -> Path:
    """A 32 MiB MBR disk, one ext4 partition: ~390 files (60 photos), one 2 MiB file; about 3 s on one worker."""
    from triage_test_fixtures.backlog import build_busy_disk

    return build_busy_disk(backlog_disks, 12, size_mib=32, pictures=60, others=300, big_mib=(2,))


@pytest.fixture(scope="session")
def small_reference(small_disk: Path, fault_dir: Path) -> Path:
    """The disk triaged undisturbed on a LocalCluster: the table every faulty run must reproduce byte for byte."""
    out = fault_dir / "reference"
    r = triage_cli("run", small_disk, "-o", out, "--workers", "2", "--no-progress", env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    return out
