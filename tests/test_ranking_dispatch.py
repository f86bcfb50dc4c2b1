"""Ranking in the backlog: the dispatcher writes reports into each job's results, a notable device raises
its whole case (`dispatcher.escalate-on`), and status / results / top / report work on job ids."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from triage_test_fixtures.backlog import Serve, audit, build_tiny_disk, jobs, submit, triage, wait_for

from triage.demo import build_sample

pytestmark = pytest.mark.slow


def test_a_notable_device_escalates_its_case_and_every_job_gets_reports(tmp_path):
    home = tmp_path / "home"
    sample = build_sample(tmp_path / "sample.dd")  # a JPEG hidden as holiday.txt: a notable device
    tiny = build_tiny_disk(tmp_path / "disks", 3)
    # one job at a time: the trigger (high) first; without escalation `other` (normal) would go before `sibling` (low)
    trigger = submit(home, sample, "OP-R", "A", "high")
    other = submit(home, tiny, "OP-S", "B", "normal")
    sibling = submit(home, build_tiny_disk(tmp_path / "disks", 4), "OP-R", "C", "low")
    with Serve(home, workers=1, max_jobs=1, env={"DASK_TRIAGE__DISPATCHER__ESCALATE_ON": "notable"}) as serve:
        serve.start()
        wait_for("every job done", lambda: all(j["state"] == "done" for j in jobs(home).values()), 300,
                 explain=serve.log_tail)
        serve.terminate()
    records = audit(home)
    esc = [r for r in records if r["action"] == "escalate"]
    assert [r["job"] for r in esc] == [sibling], esc
    assert esc[0]["details"]["rule"] == "device tier notable" and esc[0]["details"]["trigger_job"] == trigger
    assert (esc[0]["details"]["from"], esc[0]["details"]["to"]) == ("low", "critical")
    started = [r["job"] for r in records if r["action"] == "start"]
    assert started.index(sibling) < started.index(other), started

    state = jobs(home)
    assert state[trigger]["ranking"]["tier"] == "notable"
    results = state[trigger]["results_dir"]
    for name in ("report.html", "report.csv", "report.dfxml", "report.case.jsonld"):
        assert (Path(results) / name).is_file(), name
    status = triage(home, "status").stdout
    assert "DEVICE" in status and "notable" in status
    shown = triage(home, "results", trigger).stdout
    assert "device NOTABLE" in shown and "report.html" in shown
    top = triage(home, "top", trigger, "-n", "2").stdout
    assert "holiday.txt" in top and "extension-mismatch" in top
    r = triage(home, "report", trigger, "--format", "csv", "-o", tmp_path / "exported", "--json")
    [item] = json.loads(r.stdout)
    rows = list(csv.DictReader(open(item["reports"][0], newline="", encoding="utf-8")))
    assert any(row["path"] == "Documents/holiday.txt" and row["tier"] == "notable" for row in rows)
    acts = [r["action"] for r in audit(home, trigger)]
    assert "report" in acts and "view-results" in acts
    r = triage(home, "report", other.replace("J", "J9"), check=False)
    assert r.returncode == 3 and r.stderr.count("\n") == 1
