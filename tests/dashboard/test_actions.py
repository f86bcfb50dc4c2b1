"""triage/actions.py: the queue operations the CLI and the dashboard share, each audited with who and via."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage import actions
from triage.audit import AuditError, AuditLog
from triage.queue import Queue
from triage.rules.errors import InputError


@pytest.fixture
def home(tmp_path: Path, tiny_disk: Path) -> Path:
    with Queue.at(tmp_path) as q:
        q.submit([tiny_disk], case="OP-1", exhibit="A", priority="low")
        q.submit([tiny_disk], case="OP-1", exhibit="B", priority="normal")
        q.submit([tiny_disk], case="OP-2", exhibit="C", priority="normal")
    return tmp_path


def test_prioritize_a_case_records_each_job_with_who_and_via(home: Path) -> None:
    changed = actions.prioritize(home, "OP-1", "high", who="DS Jones", via="dashboard")
    assert [(j.id, old, j.priority) for j, old in changed] == [("J000001", "low", "high"), ("J000002", "normal", "high")]
    recs = list(AuditLog.at(home).records())
    assert [(r["action"], r["job"], r["details"]["by"], r["details"]["via"]) for r in recs] == [
        ("escalate", "J000001", "DS Jones", "dashboard"), ("escalate", "J000002", "DS Jones", "dashboard")]
    actions.prioritize(home, "J000001", "low", who="DS Jones")
    assert list(AuditLog.at(home).records())[-1]["action"] == "priority"
    assert AuditLog.at(home).verify() == []


def test_cancel_and_retry(home: Path) -> None:
    [job] = actions.cancel(home, "J000003", who="DC Smith", via="dashboard")
    assert job.state == "cancelled"
    again = actions.retry(home, "J000003", who="DC Smith", via="dashboard")
    assert again.state == "queued" and again.attempts == 2
    recs = [(r["action"], r["details"]["by"]) for r in AuditLog.at(home).records()]
    assert recs == [("cancel", "DC Smith"), ("retry", "DC Smith")]


def test_the_cli_records_the_login_name(home: Path) -> None:
    actions.cancel(home, "J000002")
    rec = list(AuditLog.at(home).records())[-1]
    assert rec["details"]["by"] == actions.default_who() and rec["details"]["via"] == "cli"


@pytest.mark.parametrize("who", ["", "   ", "a\x1bb", "x" * 200])
def test_an_action_names_a_person(home: Path, who: str) -> None:
    with pytest.raises(InputError):
        actions.cancel(home, "J000001", who=who)
    assert Queue.at(home).get("J000001").state == "queued"


def test_a_damaged_log_stops_the_action_before_the_queue_changes(home: Path) -> None:
    AuditLog.at(home).append("submit", job="J000001")
    with open(AuditLog.at(home).path, "ab") as f:
        f.write(b'{"half a record')
    with pytest.raises(AuditError):
        actions.prioritize(home, "J000001", "critical", who="DS Jones")
    assert Queue.at(home).get("J000001").priority == "low"
