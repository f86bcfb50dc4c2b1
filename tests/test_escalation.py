"""Escalation: a known-bad hit raises the priority of the job's whole case while it runs,
and the audit log says so. Runs the real dispatcher process and the CLI as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from triage.demo import build_sample
from triage_test_fixtures.shared import CORPUS



def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "triage.cli.main", *args, "--home", str(home)],
                       capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def audit(home: Path) -> list[dict]:
    return json.loads(cli(home, "audit", "show", "--json").stdout)


def wait_for(pred, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.3)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_known_bad_hit_escalates_the_whole_case(tmp_path):
    home = tmp_path / "home"
    sample = build_sample(tmp_path / "sample.dd")
    # the examiner's known-bad set: the picture hidden as holiday.txt
    first = subprocess.run([sys.executable, "-m", "triage.cli.main", "run", str(sample), "-o", str(tmp_path / "pre"),
                            "--workers", "1", "--no-carve", "--home", str(tmp_path / "other-home")],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode in (0, 4), first.stderr
    rows = pq.read_table(tmp_path / "pre" / "files.parquet", columns=["path", "md5"]).to_pylist()
    md5 = next(r["md5"] for r in rows if r["path"] == "Documents/holiday.txt")
    (tmp_path / "bad.md5").write_text(f"{md5}  holiday.txt\n")
    cli(home, "hashsets", "import", str(tmp_path / "bad.md5"), "--name", "force-bad", "--category", "known-bad")

    # queued before the dispatcher starts: the trigger goes first (high); without escalation the
    # other case's normal job would go before the trigger case's low sibling
    trigger = cli(home, "submit", str(sample), "--case", "OP-X", "--exhibit", "A", "--priority", "high").stdout.strip()
    other = cli(home, "submit", str(CORPUS / "sleuthkit" / "imageformat_mmls_1.E01"), "--case", "OP-Y",
                "--exhibit", "B", "--priority", "normal").stdout.strip()
    sibling = cli(home, "submit", str(CORPUS / "velociraptor" / "partition_image.E01"), "--case", "OP-X",
                  "--exhibit", "C", "--priority", "low").stdout.strip()
    serve = subprocess.Popen([sys.executable, "-m", "triage.cli.main", "serve", "--home", str(home), "--workers", "1",
                              "--max-jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        def all_done() -> bool:
            jobs = json.loads(cli(home, "status", "--json").stdout)["jobs"]
            return all(j["state"] == "done" for j in jobs)

        wait_for(all_done, 240)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
    records = audit(home)
    escalated = {r["job"] for r in records if r["action"] == "escalate"}
    assert {trigger, sibling} <= escalated and other not in escalated
    esc = next(r for r in records if r["action"] == "escalate" and r["job"] == sibling)
    assert esc["details"]["to"] == "critical" and esc["details"]["trigger_job"] == trigger
    jobs = {j["id"]: j for j in json.loads(cli(home, "status", "--json").stdout)["jobs"]}
    assert jobs[sibling]["priority"] == "critical" and jobs[other]["priority"] == "normal"
    assert jobs[trigger]["known_bad_hits"] >= 1
    started = [r["job"] for r in records if r["action"] == "start"]
    assert started.index(sibling) < started.index(other)  # the raised case went first
    assert cli(home, "audit", "verify").returncode == 0
