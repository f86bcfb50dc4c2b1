"""The backlog verbs as a user runs them: subprocesses sharing one --home."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from triage_test_fixtures.shared import CORPUS

TRIAGE = [sys.executable, "-m", "triage.cli.main"]
IMAGE = CORPUS / "sleuthkit" / "image.dd"


def triage(home: Path, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*TRIAGE, *map(str, args), "--home", str(home)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.mark.parametrize("verb", ["submit", "status", "cancel", "retry", "prioritize", "results", "audit"])
def test_every_backlog_verb_has_help_with_an_example(verb):
    r = subprocess.run([*TRIAGE, verb, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "example" in r.stdout.lower()


@pytest.mark.slow
def test_submit_status_cancel_retry_prioritize_and_audit(home, tmp_path):
    if not IMAGE.exists():
        pytest.skip(f"{IMAGE} not present")
    r = triage(home, "submit", IMAGE, "--case", "OP-1", "--exhibit", "JB/1", "--priority", "low",
               "--examiner", "DC Shaw")
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    assert job == "J000001"

    r = triage(home, "status")
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()
    assert header.split()[:5] == ["JOB", "CASE", "EXHIBIT", "PRIORITY", "STATE"]
    assert row.split()[:5] == [job, "OP-1", "JB/1", "low", "queued"]
    status = json.loads(triage(home, "status", "--json").stdout)
    [entry] = status["jobs"]
    assert entry["id"] == job and entry["state"] == "queued" and entry["position"] == 1
    assert entry["bytes_total"] == IMAGE.stat().st_size and entry["images"] == [str(IMAGE)]

    r = triage(home, "submit", tmp_path / "missing.dd", "--case", "OP-1", "--exhibit", "JB/2", "--priority", "high")
    assert r.returncode == 3
    assert r.stderr.strip().count("\n") == 0 and "missing.dd" in r.stderr and "no such file" in r.stderr

    r = triage(home, "prioritize", "OP-1", "--priority", "critical")
    assert r.returncode == 0, r.stderr
    assert json.loads(triage(home, "status", "--json").stdout)["jobs"][0]["priority"] == "critical"

    r = triage(home, "cancel", job)
    assert r.returncode == 0 and "cancelled" in r.stdout
    r = triage(home, "cancel", job)
    assert r.returncode == 3 and "nothing to cancel" in r.stderr
    r = triage(home, "results", job)
    assert r.returncode == 3 and "cancelled" in r.stderr
    r = triage(home, "retry", job, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["attempts"] == 2
    assert triage(home, "cancel", "no-such-case").returncode == 3

    r = triage(home, "audit", "verify")
    assert (r.returncode, r.stdout.strip()) == (0, "audit log OK: 4 records")
    shown = json.loads(triage(home, "audit", "show", "--job", job, "--json").stdout)
    assert [rec["action"] for rec in shown] == ["submit", "escalate", "cancel", "retry"]
    assert shown[0]["image"] == str(IMAGE) and shown[0]["details"]["size"] == IMAGE.stat().st_size

    log = home / "audit.log"
    log.write_text(log.read_text().replace('"escalate"', '"priority"'))
    r = triage(home, "audit", "verify")
    assert r.returncode == 7
    assert r.stdout.strip().splitlines() == [f"{log}: line 2 (seq 2): edited: its content does not match its hash"]

    log.write_bytes(log.read_bytes()[:-10])  # a torn last line: no change may go unrecorded
    r = triage(home, "cancel", job)
    assert r.returncode == 7 and "incomplete" in r.stderr and r.stderr.count("\n") == 1
    assert json.loads(triage(home, "status", "--json").stdout)["jobs"][0]["state"] == "queued"


@pytest.mark.slow
def test_resubmission_prints_the_same_job(home):
    if not IMAGE.exists():
        pytest.skip(f"{IMAGE} not present")
    args = ("submit", IMAGE, "--case", "OP-1", "--exhibit", "JB/1", "--priority", "normal", "--json")
    first, second = triage(home, *args), triage(home, *args)
    assert first.returncode == second.returncode == 0
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["id"] == b["id"] and not a["existed"] and b["existed"]
    assert "not added again" in second.stderr


def test_results_of_a_finished_job(home, tmp_path):
    """A job finished by a dispatcher (here: the queue API) shows its summary and Parquet paths."""
    from triage.queue import Queue

    img = tmp_path / "small.dd"
    img.write_bytes(b"\0" * 4096)
    out = tmp_path / "results"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"image": {"path": str(img)}, "files": {"entries": 3},
                                                  "exit_code": 0, "problems": []}))
    (out / "files.parquet").write_bytes(b"PAR1")
    q = Queue.at(home)
    job = q.submit([img], "OP-2", "JB/9", "high")
    q.claim_next("test")
    q.finish(job, out, {"known_bad_hits": 1})
    q.close()
    r = triage(home, "results", job.id, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["known_bad_hits"] == 1
    assert res["results"][0]["parquet"] == {"files.parquet": str(out / "files.parquet")}
    assert res["results"][0]["summary"]["files"]["entries"] == 3
    r = triage(home, "results", job.id)
    assert r.returncode == 0 and str(out / "files.parquet") in r.stdout
