"""The operators' view in a real browser: the cluster panel beside ``triage serve`` on an external
cluster of real ``dask worker`` processes shows workers lost, restarted and retired, and says when
the dispatcher has tasks waiting and no worker (it waits for workers instead of failing the job).

The story, on one open page never reloaded: worker w1 dies with its nanny mid-job (a lost
machine) → the panel lists it as lost and, after ``cluster.no-workers-seconds``, that the
dispatcher is waiting (also ``workers-none`` in the audit log); w2 joins → the warning goes,
``workers-back`` is audited, the job goes on; w2's worker process is killed and its nanny
restarts it → ``restarted``; w3 joins and w2 is retired with ``triage cluster retire`` →
``retired``; the job finishes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from triage_test_fixtures.backlog import Serve, audit, build_busy_disk, peek, submit, triage, wait_for
from triage_test_fixtures.dashboard import FAST, free_port
from triage_test_fixtures.daskprocs import DaskProcs

pytestmark = pytest.mark.slow

ENV = {"DASK_TRIAGE__CONTENT__BATCH_BYTES": "1MiB", "DASK_TRIAGE__CONTENT__BATCH_FILES": "20",
       "DASK_TRIAGE__CLUSTER__NO_WORKERS_SECONDS": "2", **FAST}


def _events(page: Any) -> list[tuple[str, str]]:
    return page.locator("#worker-events tbody tr").evaluate_all(
        "rows => rows.map(r => [r.cells[1].innerText.split(' ')[0], r.cells[2].innerText])")


def _has(page: Any, event: str, name: str) -> bool:
    return any(e == event and w.startswith(name + " (") for e, w in _events(page))


def test_the_panel_shows_lost_restarted_and_retired_workers_and_a_dispatcher_waiting_for_workers(
        dash_disks: Path, backlog_disks: Path, tmp_path: Path, chromium: Any) -> None:
    # the cluster tests' small disk (same shape, built once per session)
    disk = build_busy_disk(backlog_disks, 12, size_mib=32, pictures=60, others=300, big_mib=(2,))
    home = tmp_path / "home"
    procs = DaskProcs(tmp_path)
    port = free_port()
    serve = Serve(home, scheduler="", env=ENV, log=tmp_path / "serve.log")
    dialogs: list[str] = []
    try:
        procs.start_scheduler()
        nannies = {"w1": procs.start_worker("w1")}
        serve.args = ["serve", "--scheduler", procs.address, "--dashboard", f"127.0.0.1:{port}"]
        serve.start()
        page = chromium.new_page(viewport={"width": 1500, "height": 1200})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        wait_for("the dashboard", lambda: _goto(page, f"http://127.0.0.1:{port}/"), 90, interval=0.5,
                 explain=serve.log_tail)
        page.evaluate("window.__notReloaded = true")
        wait_for("w1 in the panel", lambda: "w1" in page.locator("#cluster table.workers").inner_text(), 60)
        # submitted only now: the small job takes a worker about 3 s, and on a loaded machine the dispatcher and
        # the page start slower than that, so a job queued before them could end before w1 is caught holding a task
        job = submit(home, disk, "OP-PANEL", "P/1", "normal")

        with procs.client() as watcher:  # w1 dies with its nanny while it holds a task of the job
            addr = procs.workers()["w1"]["address"]
            wait_for("w1 to hold a task", lambda: watcher.processing().get(addr), 120, interval=0.05)
        os.killpg(nannies["w1"].pid, signal.SIGKILL)
        wait_for("the lost worker in the panel", lambda: _has(page, "lost", "w1"), 30)
        wait_for("the panel to say the dispatcher waits for workers",
                 lambda: page.locator("#no-workers").count() == 1, 60, explain=serve.log_tail)
        assert "keeps waiting" in page.locator("#no-workers").inner_text()
        none = [r for r in audit(home) if r["action"] == "workers-none"]
        assert len(none) == 1 and none[0]["details"]["waiting_tasks"] >= 1, none
        assert "lost unexpectedly" in none[0]["details"]["reason"]
        assert peek(home)[job]["state"] == "running"  # waiting, not failed

        nannies["w2"] = procs.start_worker("w2")
        wait_for("the warning to go", lambda: page.locator("#no-workers").count() == 0, 60)
        wait_for("w2 joined in the panel", lambda: _has(page, "joined", "w2"), 30)
        back = [r for r in audit(home) if r["action"] == "workers-back"]
        assert len(back) == 1 and back[0]["details"]["outage_seconds"] >= 2, back

        os.kill(procs.worker_pid(nannies["w2"]), signal.SIGKILL)  # its nanny brings it back
        wait_for("w2 restarted in the panel", lambda: _has(page, "restarted", "w2"), 60)
        nannies["w3"] = procs.start_worker("w3")
        triage(None, "cluster", "retire", "w2", "--scheduler", procs.address)
        wait_for("w2 retired in the panel", lambda: _has(page, "retired", "w2"), 30)
        wait_for("the job to finish", lambda: peek(home)[job]["state"] in ("done", "failed"), 300,
                 explain=serve.log_tail)
        assert peek(home)[job]["state"] == "done", peek(home)[job].get("error")
        assert page.evaluate("window.__notReloaded") is True
        names = [w for _, w in _events(page)]
        assert all("<" not in w for w in names) and dialogs == []
        # the events table (long addresses) stays inside the 300 px panel instead of spilling over its edge
        spill = page.evaluate("() => document.querySelector('#worker-events').getBoundingClientRect().right"
                              " - document.querySelector('aside').getBoundingClientRect().right")
        assert spill <= 0, f"the worker-events table sticks out of the cluster panel by {spill} px"
        page.screenshot(path=str(tmp_path / "cluster-panel.png"), full_page=True)
    finally:
        serve.close()
        procs.close()


def _goto(page: Any, url: str) -> bool:
    try:
        return page.goto(url).status == 200
    except Exception:  # noqa: BLE001 - not listening yet
        return False
