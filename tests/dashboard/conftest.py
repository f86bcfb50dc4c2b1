"""Dashboard test fixtures: built disks, dashboard processes, and Debian's Chromium under Playwright.

Playwright cannot download its own browsers here (no internet), so the system
``chromium`` is passed as ``executable_path``; without it the browser tests are skipped,
saying why (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from triage_test_fixtures.backlog import build_tiny_disk, tool_env
from triage_test_fixtures.dashboard import CHROMIUM_ARGS, DashboardProcess, free_port


@pytest.fixture(scope="session")
def dash_disks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("mke2fs", path=tool_env(Path("/"))["PATH"]) is None:
        pytest.skip("mke2fs (e2fsprogs) not installed")
    return tmp_path_factory.mktemp("dash-disks")


@pytest.fixture(scope="session")
def tiny_disk(dash_disks: Path) -> Path:
    return build_tiny_disk(dash_disks, 21)


@pytest.fixture
def dashboards(tmp_path: Path) -> Iterator[Any]:
    """``dashboards(home, bind)``: started dashboards, stopped at teardown."""
    made: list[DashboardProcess] = []

    def make(home: Path, bind: str | None = None, start: bool = True, **kw: Any) -> DashboardProcess:
        d = DashboardProcess(home, bind or f"127.0.0.1:{free_port()}", tmp_path / f"dash-{len(made)}.log", **kw)
        made.append(d)
        return d.start() if start else d

    yield make
    for d in made:
        d.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium under Playwright (skipped, saying why, when absent); closed after
    the module, so it does not sit in memory through the rest of the run."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium installed (Debian package 'chromium'; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
