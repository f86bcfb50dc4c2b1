"""The audit log: the hash chain holds, and every kind of tampering is found and named."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path

import pytest

from triage.audit import GENESIS, AuditError, AuditLog, canonical, record_hash, verify


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.log")
    for i in range(1, 7):
        log.append("submit", job=f"J{i:06d}", case="OP-1", image=f"/evidence/{i}.dd", details={"size": i * 512})
    return log


def lines(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().split(b"\n")[:-1]


def write(log: AuditLog, new: list[bytes]) -> None:
    log.path.write_bytes(b"".join(line + b"\n" for line in new))


def problems(log: AuditLog) -> list[str]:
    return [str(p) for p in verify(log.path)]


def test_chain_verifies_and_records_are_complete(log):
    assert verify(log.path) == []
    recs = list(log.records())
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5, 6]
    assert recs[0]["prev"] == GENESIS
    raw = lines(log)
    for before, rec in zip(raw, recs[1:]):
        assert rec["prev"] == hashlib.sha256(before).hexdigest()
    r = recs[2]
    assert r["time"].endswith("Z") and r["user"] and r["host"] and r["action"] == "submit"
    assert r["hash"] == record_hash(r) and r["image_hash"] is None and r["details"] == {"size": 1536}


def test_missing_log_is_empty_and_ok(tmp_path):
    assert verify(tmp_path / "audit.log") == []


def test_edited_field_is_named(log):
    raw = lines(log)
    rec = json.loads(raw[2])
    rec["case"] = "OP-2"
    write(log, raw[:2] + [canonical(rec)] + raw[3:])
    assert problems(log) == ["line 3 (seq 3): edited: its content does not match its hash"]


def test_edit_with_a_recomputed_hash_is_still_found(log):
    raw = lines(log)
    rec = json.loads(raw[2])
    rec["image"] = "/evidence/other.dd"
    rec["hash"] = record_hash(rec)
    write(log, raw[:2] + [canonical(rec)] + raw[3:])
    assert problems(log) == ["line 3 (seq 3): edited: line 4 no longer chains to it"]


def test_deleted_line_is_named(log):
    raw = lines(log)
    write(log, raw[:3] + raw[4:])
    assert problems(log) == ["line 4 (seq 5): record seq 4 removed before this line"]


def test_deleted_first_and_last_lines_are_found(log):
    raw = lines(log)
    write(log, raw[1:])
    assert problems(log) == ["line 1 (seq 2): records before this one are missing (the log starts at seq 2, "
                             "not at seq 1)"]
    write(log, raw[:-1])
    assert problems(log) == ["line 5 (seq 5): record seq 6 removed from the end (the log ends at seq 5)"]


def test_swapped_lines_are_named(log):
    raw = lines(log)
    write(log, raw[:2] + [raw[3], raw[2]] + raw[4:])
    assert problems(log) == ["line 3 (seq 4): reordered: swapped with line 4",
                             "line 4 (seq 3): reordered: swapped with line 3"]


def test_inserted_forged_line_is_named(log):
    raw = lines(log)
    forged = json.loads(raw[2])
    forged.update(seq=4, job="J000099", prev=hashlib.sha256(raw[2]).hexdigest())
    forged["hash"] = record_hash(forged)  # a careful forger: valid hash, chained to the line before
    write(log, raw[:3] + [canonical(forged)] + raw[3:])
    assert problems(log) == ["line 4 (seq 4): inserted: not part of the chain (line 5 chains past it to line 3)"]


def test_truncated_last_line_is_named(log):
    data = log.path.read_bytes()
    log.path.write_bytes(data[:-30])
    assert problems(log) == ["line 6: incomplete last line (truncated, or a write was interrupted)"]
    with pytest.raises(AuditError, match="incomplete"):
        log.append("cancel", job="J000001")


def test_garbage_line_is_named(log):
    raw = lines(log)
    write(log, raw[:1] + [b"not json"] + raw[1:])
    out = problems(log)
    assert out[0] == "line 2: not a JSON record"


def test_append_continues_the_chain_after_reopening(log, tmp_path):
    again = AuditLog(tmp_path / "audit.log")
    rec = again.append("cancel", job="J000001", case="OP-1", details={"requested": False})
    assert rec["seq"] == 7 and rec["prev"] == hashlib.sha256(lines(log)[5]).hexdigest()
    assert verify(log.path) == []


def test_bad_action_is_refused(tmp_path):
    with pytest.raises(ValueError):
        AuditLog(tmp_path / "audit.log").append("Submit job")


def _append_many(path: str, n: int, who: int, barrier) -> None:
    barrier.wait()
    log = AuditLog(path)
    for i in range(n):
        log.append("priority", job=f"J{who:06d}", details={"i": i})


@pytest.mark.slow
def test_concurrent_appends_keep_the_chain(tmp_path):
    path = tmp_path / "state" / "audit.log"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(6)
    procs = [ctx.Process(target=_append_many, args=(str(path), 25, w, barrier)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert verify(path) == []
    recs = list(AuditLog(path).records())
    assert [r["seq"] for r in recs] == list(range(1, 151))
    assert sorted((r["job"], r["details"]["i"]) for r in recs) == sorted(
        (f"J{w:06d}", i) for w in range(6) for i in range(25))
