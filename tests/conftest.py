"""Shared fixtures: a real Dask cluster, evidence images built with the real tools, result readers.

The image builders live in ``tests/fixtures/`` (``images.py``, ``bad_images.py``) with
their TSK oracle (``tsk_truth.py``). pytest runs with ``--import-mode=importlib``, so the
repo root is not on ``sys.path``: that folder is loaded here as the package
``triage_test_fixtures``, which test modules import by that name.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def _load_fixtures_package() -> Any:
    name = "triage_test_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    init = Path(__file__).parent / "fixtures" / "__init__.py"
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_load_fixtures_package()

# Runs check files against the known-item sets of the state directory; the tests must not
# see (or touch) the developer's own, so every test process and subprocess gets an empty one.
import tempfile  # noqa: E402

os.environ["TRIAGE_HOME"] = tempfile.mkdtemp(prefix="triage-test-home-")

from triage_test_fixtures import bad_images, images, mkfs  # noqa: E402
from triage_test_fixtures.cli import triage_command  # noqa: E402
from triage_test_fixtures.results import RunCache, read_parquet  # noqa: E402
from triage_test_fixtures.tsk_truth import ImageTruth  # noqa: E402


def _need(*kinds: str) -> None:
    missing = mkfs.missing_tools(*kinds)
    if missing:
        pytest.skip(f"tool(s) not installed: {', '.join(missing)}")


# ---------------------------------------------------------------- cluster


@pytest.fixture(scope="session")
def client() -> Iterator[Any]:
    """A real LocalCluster of 2 single-threaded worker processes, shared by the session."""
    from distributed import Client, LocalCluster

    # dashboard_address=None would still bind the HTTP server to 8787 (a warning, so an error here, when
    # another cluster holds it): a free loopback port instead
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0")
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


# ---------------------------------------------------------------- images


@pytest.fixture(scope="session")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evidence")


@pytest.fixture(scope="session")
def backlog_disks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the generated backlog disks of the whole session (``backlog.build_busy_disk`` /
    ``build_tiny_disk`` return a disk already there for the same parameters), so modules that need a
    disk of the same shape (the dispatcher's, the dashboard's) build it once, not once each."""
    return tmp_path_factory.mktemp("backlog-disks")


@pytest.fixture(scope="session")
def mbr_image(images_dir: Path) -> ImageTruth:
    """(a) MBR disk: FAT32, ext4, extended + logical NTFS; nested dirs, images, deleted files, an ADS."""
    _need("mbr")
    return images.build_mbr_disk(images_dir / "mbr")


@pytest.fixture(scope="session")
def gpt_image(images_dir: Path) -> ImageTruth:
    """(b) GPT disk: FAT16, ext4, and a partition of zeros."""
    _need("gpt")
    return images.build_gpt_disk(images_dir / "gpt")


@pytest.fixture(scope="session")
def bare_ext4_image(images_dir: Path) -> ImageTruth:
    """(c) an ext4 filesystem with no partition table."""
    _need("ext4")
    return images.build_bare_ext4(images_dir / "bare")


@pytest.fixture(scope="session")
def split_raw_image(mbr_image: ImageTruth, images_dir: Path) -> ImageTruth:
    """(d) the MBR disk split into .001 .002 .003."""
    _need("split")
    return images.build_split_raw(mbr_image, images_dir / "split")


@pytest.fixture(scope="session")
def e01_image(mbr_image: ImageTruth, images_dir: Path) -> ImageTruth:
    """(e) the MBR disk as a single-segment E01."""
    _need("e01")
    return images.build_e01(mbr_image, images_dir / "e01")


@pytest.fixture(scope="session")
def e01_multi_image(mbr_image: ImageTruth, images_dir: Path) -> ImageTruth:
    """(e) the MBR disk as an E01 of 1 MiB segments (.E01 ... .E05)."""
    _need("e01")
    return images.build_e01(mbr_image, images_dir / "e01multi", segment_bytes=1 << 20)


@pytest.fixture(scope="session")
def hostile_image(images_dir: Path) -> ImageTruth:
    _need("ext4")
    return bad_images.build_hostile_ext4(images_dir / "hostile")


@pytest.fixture(scope="session")
def loop_image(images_dir: Path) -> ImageTruth:
    _need("ext4")
    return bad_images.build_dir_loop(images_dir / "loop")


@pytest.fixture(scope="session")
def truncated_image(mbr_image: ImageTruth, images_dir: Path) -> ImageTruth:
    return bad_images.truncated_copy(mbr_image, images_dir / "truncated")


@pytest.fixture(scope="session")
def bad_superblock_image(mbr_image: ImageTruth, images_dir: Path) -> ImageTruth:
    return bad_images.corrupt_superblock_copy(mbr_image, images_dir / "badsb")


@pytest.fixture(scope="session")
def past_end_image(images_dir: Path) -> ImageTruth:
    _need("gpt")
    return bad_images.build_past_end_table(images_dir / "pastend")


# ---------------------------------------------------------------- running the pipeline


@pytest.fixture(scope="session")
def triaged(client: Any, tmp_path_factory: pytest.TempPathFactory) -> RunCache:
    """``triaged(image_truth_or_path)`` runs ``run_image`` once per image and caches the result."""
    return RunCache(client, tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def read_rows() -> Callable[[Path], list[dict[str, Any]]]:
    """Read a Parquet file to a list of dicts (one per row)."""
    return read_parquet


@pytest.fixture(scope="session")
def triage_cli(client: Any) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``triage ARGS...`` as a subprocess. ``cluster=True`` points it at the session's scheduler."""

    def run(*args: str | Path, cwd: Path | None = None, cluster: bool = True, timeout: float = 240,
            ) -> subprocess.CompletedProcess[str]:
        cmd = triage_command() + [str(a) for a in args]
        if cluster:
            cmd += ["--scheduler", client.scheduler.address]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)

    return run
