"""A worker that joins a running cluster with other versions is refused before it runs a task.

The connect-time check (``test_status.py``) sees the workers there are; this one starts a
real ``dask worker`` *after* ``triage serve`` connected, from an installation that declares
another evidence-triage version (the same code under ``0.0.1+old``: an un-upgraded machine).
The guard (:mod:`triage.cluster.guard`) pauses it, closes it with its nanny (the process
exits: nothing restarts it), and ``serve`` audits ``worker-refused`` naming what differs;
``triage cluster status`` lists the refusal; a job running meanwhile ends identical to a
clean run's.
"""

from __future__ import annotations

import html
import json
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import triage
from triage_test_fixtures.backlog import Serve, audit, peek, submit, wait_for
from triage_test_fixtures.dashboard import FAST, free_port

from .conftest import ENV, DaskProcs, triage_cli

pytestmark = pytest.mark.slow

OLD = "0.0.1+old"


def _declaring(tmp: Path, version: str) -> dict[str, str]:
    """An environment whose ``import triage`` is this very code declaring ``version``."""
    pkg = tmp / "declared" / "triage"
    pkg.mkdir(parents=True, exist_ok=True)
    real = Path(triage.__file__).parent
    (pkg / "__init__.py").write_text(f'__version__ = "{version}"\n__path__.append({str(real)!r})\n')
    return {"PYTHONPATH": str(pkg.parent)}


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return None


def test_a_worker_joining_later_with_another_version_is_refused_and_audited(small_disk: Path, small_reference: Path,
                                                                           tmp_path: Path) -> None:
    procs = DaskProcs(tmp_path)
    home = tmp_path / "home"
    try:
        procs.start_scheduler()
        procs.start_worker("a")
        port = free_port()
        with Serve(home, scheduler=procs.address, env={**ENV, **FAST}, log=tmp_path / "serve.log") as serve:
            serve.args += ["--dashboard", f"127.0.0.1:{port}"]
            serve.start()
            job = submit(home, small_disk, "OP-GUARD", "G/1", "normal")
            wait_for("the job to be under way", lambda: peek(home)[job]["bytes_done"] > 0, 120,
                     explain=serve.log_tail)
            old = procs.start_worker("old", env=_declaring(tmp_path, OLD), wait=False)
            refused = wait_for("serve to audit the refusal", lambda: [
                r for r in audit(home) if r["action"] == "worker-refused"], 90, explain=serve.log_tail)
            old.wait(timeout=60)  # the `dask worker` process ends: its nanny closed with it
            assert "old" not in procs.workers()
            panel = wait_for("the dashboard's cluster panel to list the refusal", lambda: (
                text := _get(f"http://127.0.0.1:{port}/fragments/cluster")) and "refused" in text and text, 60)
            assert f"evidence-triage {OLD} (client {triage.__version__})" in html.unescape(panel)
            wait_for("the job to finish", lambda: peek(home)[job]["state"] in ("done", "failed"), 300,
                     explain=serve.log_tail)
        st = triage_cli("cluster", "status", "--scheduler", procs.address, "--json")
        logs = procs.log("worker-old.log")
    finally:
        procs.close()
    assert len(refused) == 1, refused
    details = refused[0]["details"]
    assert details["name"] == "old"
    assert details["differences"] == [f"evidence-triage {OLD} (client {triage.__version__})"], details
    assert "refusing to run triage tasks" in logs and "Compute Failed" not in logs
    assert st.returncode == 0, st.stderr
    events = json.loads(st.stdout)["events"]
    assert [e["workers"] for e in events if e["event"] == "refused"] == [[details["worker"]]], events
    assert peek(home)[job]["state"] == "done", peek(home)[job].get("error")
    out = home / "jobs" / job / "results"
    for name in ("files.parquet", "volumes.parquet"):
        assert (out / name).read_bytes() == (small_reference / name).read_bytes(), name
    assert pq.read_table(out / "files.parquet").num_rows > 300
