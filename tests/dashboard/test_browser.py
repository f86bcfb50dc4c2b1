"""The dashboard in a real browser (Debian's Chromium under Playwright) beside a real ``triage serve``.

One backlog, worked by ``triage serve --max-jobs 1 --dashboard ADDR`` on its own
LocalCluster of two worker processes, with a 256 MiB disk of a few thousand files (a job
that lasts long enough to watch) and small ones:

* the page lists the jobs in the order ``triage status`` (the dispatcher's order) gives;
* the running job's progress bar moves while the page is never reloaded;
* a re-prioritisation made on the page (confirmed, with the examiner's name) reorders the
  backlog on another open page, is what the dispatcher starts next, and is in the audit
  log with that name;
* a case named ``<img src=x onerror=alert(1)>`` shows as text and no dialog ever opens;
* the dispatcher (and its dashboard) killed and started again: the open page recovers by
  itself and follows the backlog to the end;
* a job's page: partitions as ``mmls`` lists them, the results files (byte-identical when
  fetched), its audit records, and, once ranked, the top items with their reasons as text.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triage_test_fixtures.backlog import (Serve, audit, build_busy_disk, build_tiny_disk, jobs, peek, submit,
                                          wait_for)
from triage_test_fixtures.dashboard import FAST, free_port
from triage_test_fixtures.mkfs import TOOL_ENV

pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=alert(1)>"
ENV = {"DASK_TRIAGE__CONTENT__BATCH_BYTES": "8MiB", **FAST}
EXAMINER = "DS Page Tester"
DONE_WITHIN = 300.0


@dataclass
class Scene:
    home: Path
    base: str
    serve: Serve
    ids: dict[str, str]          # role -> job id
    dialogs: list[str]
    pages: list[Any]
    busy: Path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, chromium: Any, backlog_disks: Path) -> Iterator[Scene]:
    work = tmp_path_factory.mktemp("dash-browser")
    # the first of the dispatcher tests' disks (same shape, built once per session)
    busy = build_busy_disk(backlog_disks, 1, pictures=300, others=3000, big_mib=(8,))
    tiny = build_tiny_disk(work, 32)
    home = work / "home"
    ids = {
        "long": submit(home, busy, "OP-ALPHA", "A/1", "normal"),
        # busy too: on a fast machine the long job takes ~3 s, and the page is escalating the raised job
        # ~3.5 s after it started, which must still find that job waiting in line
        "hostile": submit(home, busy, HOSTILE, "B/1", "normal"),
        "gamma": submit(home, busy, "OP-GAMMA", "C/1", "low"),
        "delta": submit(home, tiny, "OP-DELTA", "D/1", "low"),
        "raised": submit(home, tiny, "OP-DELTA", "D/2", "low"),
        "last": submit(home, busy, "OP-OMEGA", "E/1", "low"),  # still running when the service is killed
    }
    port = free_port()
    serve = Serve(home, workers=2, max_jobs=1, env=ENV, log=work / "serve.log")
    serve.args += ["--dashboard", f"127.0.0.1:{port}"]
    scene = Scene(home, f"http://127.0.0.1:{port}", serve, ids, [], [], busy)
    serve.start()
    try:
        _wait_listening(scene)
        yield scene
    finally:
        for p in scene.pages:
            p.close()
        serve.close()


def _wait_listening(scene: Scene) -> None:
    import urllib.request

    def up() -> bool:
        if not scene.serve.alive():
            raise AssertionError(f"triage serve exited:\n{scene.serve.log_tail()}")
        try:
            with urllib.request.urlopen(scene.base + "/api/backlog", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for("the dashboard beside triage serve", up, 90, interval=0.3)


def _open(scene: Scene, chromium: Any, path: str = "/") -> Any:
    page = chromium.new_page(viewport={"width": 1500, "height": 1000})
    page.on("dialog", lambda d: (scene.dialogs.append(d.message), d.dismiss()))
    page.goto(scene.base + path)
    page.evaluate("window.__notReloaded = true")  # gone if the page is ever reloaded
    scene.pages.append(page)
    return page


def _rows(page: Any) -> list[str]:
    return page.locator("tr.job").evaluate_all("els => els.map(e => e.dataset.job)")


def _running(scene: Scene, role: str) -> bool:
    return peek(scene.home)[scene.ids[role]]["state"] == "running"


def test_backlog_in_dispatcher_order_live_and_reprioritised_on_the_page(scene: Scene, chromium: Any) -> None:
    ids = scene.ids
    wait_for("the long job to run", lambda: _running(scene, "long") and
             peek(scene.home)[ids["long"]]["bytes_done"] > 0, 180, interval=0.3)
    page = _open(scene, chromium, "/?group=none")
    # progress moves without a reload (looked at first: on a fast machine the long job takes ~3 s; a done
    # job's bar is full, so the bar has moved either way)
    bar = page.locator(f"tr[data-job='{ids['long']}'] progress")
    first = float(bar.get_attribute("value"))
    wait_for("the progress bar to move", lambda: float(bar.get_attribute("value")) > first, 60, interval=0.2)
    assert page.evaluate("window.__notReloaded") is True

    # triage status --json: the dispatcher's order. A job may start or end between the page's last update
    # and the status call, so the live page is given a moment to agree
    def agrees(p: Any) -> bool:
        return _rows(p) == list(jobs(scene.home))

    wait_for("the page to show the dispatcher's order", lambda: agrees(page), 10, interval=0.3)
    grouped = _open(scene, chromium, "/")
    # one job per case but OP-DELTA's two, adjacent in line
    wait_for("the grouped page to show the dispatcher's order", lambda: agrees(grouped), 10, interval=0.3)
    # the hostile case name is text, nowhere markup
    assert page.locator(f"tr[data-job='{ids['hostile']}'] td.case").inner_text() == HOSTILE
    assert grouped.locator("tr.case-row .case-name").all_inner_texts().count(HOSTILE) == 1
    assert page.locator("img").count() == 0 and grouped.locator("img").count() == 0

    # re-prioritise the last job in line from the page: confirm, name, done
    raised = ids["raised"]
    page.locator(f"tr[data-job='{raised}'] a.act-prio").click()
    page.wait_for_selector("form.confirm")
    page.select_option("#priority", "critical")
    page.fill("#who", EXAMINER)
    page.click("#confirm")
    page.wait_for_url(re.compile(r"notice="))
    assert "low → critical" in page.locator("#notice").inner_text()
    # the other page, never reloaded, shows the new order by itself
    row = grouped.locator(f"tr[data-job='{raised}']")
    wait_for("the open page to move the job up (or show it started: it is next)",
             lambda: row.get_attribute("data-position") == "1" or row.get_attribute("data-state") != "queued", 10)
    assert grouped.evaluate("window.__notReloaded") is True
    assert f"escalated by {EXAMINER}" in grouped.locator(f"tr[data-job='{raised}'] td.prio").inner_text()
    now = jobs(scene.home)
    # first in line, or already started: on a fast machine the long job can end, and the dispatcher start
    # the raised one, between the page showing it first and this look (its start is checked below)
    assert now[raised]["priority"] == "critical"
    assert now[raised]["position"] == 1 or now[raised]["state"] in ("running", "done"), now[raised]
    wait_for("the page to show the dispatcher's order", lambda: agrees(page), 10, interval=0.3)

    # the audit log says who, and the dispatcher starts that job next
    records = audit(scene.home)
    [esc] = [r for r in records if r["action"] == "escalate" and r["job"] == raised]
    assert esc["details"]["by"] == EXAMINER and esc["details"]["via"] == "dashboard"
    assert esc["details"]["from"] == "low" and esc["details"]["to"] == "critical"

    def next_start() -> str | None:
        later = [r for r in audit(scene.home) if r["seq"] > esc["seq"] and r["action"] == "start"]
        return later[0]["job"] if later else None

    assert wait_for("the dispatcher to start another job", next_start, DONE_WITHIN, interval=1) == raised
    assert scene.dialogs == []


def test_the_page_survives_the_dispatcher_killed_and_restarted(scene: Scene, chromium: Any) -> None:
    page = _open(scene, chromium, "/")
    wait_for("the cluster panel to show both workers",
             lambda: page.locator("#cluster table.workers tbody tr").count() == 2, 30)
    address = json.loads((scene.home / "scheduler.json").read_text())["address"]
    assert address in page.locator("#cluster").inner_text()
    dask_link = json.loads((scene.home / "scheduler.json").read_text())["dashboard"]
    assert page.locator("#cluster a", has_text="Dask").get_attribute("href") == dask_link
    # the kill follows the first sign of progress at once: on a fast machine the last job takes ~2 s
    wait_for("the last job to be under way", lambda: (last := peek(scene.home)[scene.ids["last"]])["state"] ==
             "running" and last["bytes_done"] > 0, DONE_WITHIN, interval=0.05)
    scene.serve.kill_group()  # dispatcher, its workers and its dashboard: a crash of the whole service
    wait_for("the page to notice", lambda: "bad" in (page.locator("#live-status").get_attribute("class") or ""), 15)
    scene.serve.start()
    _wait_listening(scene)
    wait_for("the page to recover", lambda: "bad" not in (page.locator("#live-status").get_attribute("class") or ""), 30)
    published = wait_for("the new dispatcher to publish its scheduler", lambda: (
        info := json.loads((scene.home / "scheduler.json").read_text()))["pid"] == scene.serve.pid and info, 120)
    new_address = published["address"]
    wait_for("the panel to show the new scheduler", lambda: new_address in page.locator("#cluster").inner_text(), 30)

    def all_done() -> bool:
        if not scene.serve.alive():
            raise AssertionError(f"triage serve exited:\n{scene.serve.log_tail()}")
        return set(page.locator("tr.job").evaluate_all("els => els.map(e => e.dataset.state)")) == {"done"}

    wait_for("every job to show done on the open page", all_done, DONE_WITHIN, interval=1)
    assert page.evaluate("window.__notReloaded") is True
    assert {j["state"] for j in jobs(scene.home).values()} == {"done"}
    assert [r["job"] for r in audit(scene.home) if r["action"] == "requeue"] == [scene.ids["last"]]  # killed mid-job
    assert page.locator("#cluster polyline").count() >= 1  # the backlog charts have samples
    assert scene.dialogs == []


def _mmls(disk: Path) -> list[tuple[int, str]]:
    out = subprocess.run(["mmls", str(disk)], capture_output=True, text=True, check=True,
                         env=TOOL_ENV).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\d+:\s+\S+\s+(\d+)\s+\d+\s+\d+\s+(.+)$", line)
        if m:
            rows.append((int(m.group(1)) * 512, m.group(2).strip()))
    return rows


def test_job_page(scene: Scene, chromium: Any) -> None:
    long_id = scene.ids["long"]
    page = _open(scene, chromium, f"/jobs/{long_id}")
    cells = page.locator("table.volumes tr.volume").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.innerText))")
    assert sorted((int(c[2]), c[5]) for c in cells) == sorted(_mmls(scene.busy))
    assert "Ext4" in [c[6] for c in cells]
    results = Path(peek(scene.home)[long_id]["results_dir"])
    links = page.locator("ul.files a").all_inner_texts()
    assert {"files.parquet", "volumes.parquet", "summary.json", "image.json"} <= set(links)
    href = page.locator("ul.files a", has_text="summary.json").get_attribute("href")
    assert page.request.get(scene.base + href).body() == (results / "summary.json").read_bytes()
    assert page.request.get(scene.base + f"/jobs/{long_id}/files/..%2Fwork%2F..%2F..%2Fqueue.sqlite").status == 404
    actions = page.locator("tr.audit-record").evaluate_all("rs => rs.map(r => r.dataset.action)")
    assert actions[0] == "submit" and "start" in actions and actions[-1] == "finish"
    assert "carry no ranking" not in page.locator("main").inner_text()  # every run ranks its rows
    assert page.locator("table.top tr.item").count() > 0
    assert page.locator("img").count() == 0

    # ranked results (as the ranking writes them): top items by score, reasons as text, never a picture
    hostile_id = scene.ids["hostile"]
    rdir = Path(peek(scene.home)[hostile_id]["results_dir"])
    table = pq.read_table(rdir / "files.parquet").drop_columns(["score", "tier", "reasons"])  # planted below
    n = table.num_rows
    scores = [float((i * 37) % 101) for i in range(n)]
    reasons = [["<script>alert(3)</script> planted reason", f"weight {i}"] for i in range(n)]
    table = table.append_column("score", pa.array(scores)).append_column(
        "tier", pa.array(["notable" if s > 80 else "unknown" for s in scores])).append_column(
        "reasons", pa.array(reasons))
    pq.write_table(table, rdir / "files.parquet")
    summary = json.loads((rdir / "summary.json").read_text())
    summary["ranking"] = {"score": 91, "tier": "notable", "reasons": ["3 notable items <b>x</b>"]}
    (rdir / "summary.json").write_text(json.dumps(summary))
    page = _open(scene, chromium, f"/jobs/{hostile_id}")
    shown = page.locator("table.top tr.item").evaluate_all("rs => rs.map(r => r.cells[2].innerText)")
    paths = table.column("path").to_pylist()
    want = sorted(range(n), key=lambda i: (-scores[i], paths[i]))[:len(shown)]
    assert shown and [s.split(" (")[0] for s in shown] == [paths[i] for i in want]
    assert "<script>alert(3)</script> planted reason" in page.locator("table.top").inner_text()
    assert "3 notable items <b>x</b>" in page.locator("main").inner_text()
    assert page.locator("img").count() == 0
    backlog = _open(scene, chromium, "/")  # the device tier, once the open page next renders it afresh
    wait_for("the backlog to show the device tier",
             lambda: "notable" in backlog.locator(f"tr[data-job='{hostile_id}']").inner_text(), 10)
    assert scene.dialogs == []
