"""The chain-of-custody audit log: ``<state dir>/audit.log``, append-only JSON Lines.

Each line is one record: ``seq`` (1, 2, ...), ``time`` (UTC, ISO 8601 with Z),
``user``, ``host``, ``action`` (what this package writes: submit, start, finish, fail,
cancel, retry, requeue, priority, escalate, run, view-results, hashset-import,
hashset-remove; any word-with-hyphens is accepted), ``job``, ``case``, ``image`` (a path or a
list of paths), ``image_hash`` (when known), ``details`` (a dict), ``prev`` (sha256
hex of the previous line's exact bytes without its newline; 64 zeros for the first)
and ``hash`` (sha256 of the record's canonical JSON without ``hash``). Lines are
canonical JSON too (sorted keys, no spaces, UTF-8), so they can be re-checked.

Appending takes ``fcntl.flock`` on the log, reads the last line under the lock to
chain to it, writes one line and fsyncs; several processes may append at once.
Beside the log, ``audit.log.head`` records the seq and line hash of the last record
written, so removing whole records from the end is detected too (the chain alone
cannot see that). A log whose last line is incomplete is refused for appending: move
both files aside (keep them as evidence) and a new chain starts.

:func:`verify` names every edited, removed, inserted or reordered record by line
number and seq. ``triage audit verify`` exits 0 when the log is intact and
:data:`EXIT_TAMPERED` (7) when it is not.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from triage.rules.errors import TriageError
from triage.rules.home import state_dir

if TYPE_CHECKING:
    from triage.queue import Job

FILENAME = "audit.log"
GENESIS = "0" * 64
EXIT_TAMPERED = 7
FIELDS = ("seq", "time", "user", "host", "action", "job", "case", "image", "image_hash", "details", "prev", "hash")
_ACTION = re.compile(r"^[a-z][a-z0-9-]*$")


class AuditError(TriageError):
    """The audit log is damaged or has been tampered with; custody cannot be vouched for."""

    exit_code = EXIT_TAMPERED


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the log, at a 1-based line number (seq when it can be read)."""

    line: int
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"{where}: {self.message}"


def log_path(home: str | os.PathLike[str] | None = None) -> Path:
    return state_dir(home) / FILENAME


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_hash(record: dict[str, Any]) -> str:
    return sha256(canonical({k: v for k, v in record.items() if k != "hash"}))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _last_line(fd: int, path: Path) -> bytes | None:
    """The last line of the file (without its newline), read backwards; None when empty."""
    end = os.lseek(fd, 0, os.SEEK_END)
    if end == 0:
        return None
    buf, pos = b"", end
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        if buf.count(b"\n") >= 2 or (pos == 0):
            break
    if not buf.endswith(b"\n"):
        raise AuditError(f"{path}: last line is incomplete (interrupted write or truncated); "
                         "run 'triage audit verify'")
    return buf[:-1].rsplit(b"\n", 1)[-1]


class AuditLog:
    """Append to and read one audit log file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")

    @classmethod
    def at(cls, home: str | os.PathLike[str] | None = None) -> AuditLog:
        return cls(log_path(home))

    def append(self, action: str, *, job: str | None = None, case: str | None = None,
               image: str | list[str] | None = None, image_hash: str | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write one record chained to the last one; returns it (with seq, prev and hash)."""
        if not _ACTION.match(action):
            raise ValueError(f"audit action {action!r} is not a lowercase word")
        with self._locked() as fd:
            seq, prev = self._tail(fd)
            record: dict[str, Any] = {
                "seq": seq, "time": _now(), "user": getpass.getuser(), "host": socket.gethostname(),
                "action": action, "job": job, "case": case, "image": image, "image_hash": image_hash,
                "details": details or {}, "prev": prev,
            }
            record["hash"] = record_hash(record)
            line = canonical(record)
            try:
                os.write(fd, line + b"\n")
                os.fsync(fd)
                self._write_head(seq, sha256(line))
                if seq == 1:
                    _fsync_dir(self.path.parent)
            except OSError as exc:
                raise TriageError(f"{self.path}: cannot append to the audit log: {exc.strerror or exc}") from exc
        return record

    def check_writable(self) -> None:
        """Raise now, before a change is made, if a record could not be appended after it."""
        with self._locked() as fd:
            self._tail(fd)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """The log opened for appending, under an exclusive flock (released by close)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise TriageError(f"{self.path}: cannot open the audit log: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def _tail(self, fd: int) -> tuple[int, str]:
        """(seq, prev) for the next record, chained to the last line of the log."""
        last = _last_line(fd, self.path)
        if last is None:
            return 1, GENESIS
        try:
            return int(json.loads(last)["seq"]) + 1, sha256(last)
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"{self.path}: last record cannot be read; run 'triage audit verify'") from exc

    def append_job(self, action: str, job: Job, *, image_hash: str | None = None,
                   details: dict[str, Any] | None = None) -> dict[str, Any]:
        """A record about a queue job: its id, case and image path(s) filled in."""
        image: str | list[str] = job.images[0] if len(job.images) == 1 else list(job.images)
        return self.append(action, job=job.id, case=job.case, image=image, image_hash=image_hash,
                           details=details)

    def _write_head(self, seq: int, line_hash: str) -> None:
        tmp = self.head_path.with_name(f"{self.head_path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(canonical({"seq": seq, "line_sha256": line_hash}) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.head_path)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable record in file order (verify() says whether to trust them)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    yield rec

    def verify(self) -> list[Problem]:
        return verify(self.path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify(path: str | os.PathLike[str]) -> list[Problem]:
    """Every problem with the log at ``path``; an empty list means the chain is intact."""
    path = Path(path)
    head_path = path.with_name(path.name + ".head")
    data = path.read_bytes() if path.exists() else b""
    lines = data.split(b"\n")
    complete = lines[-1] == b""
    lines = lines[:-1] if complete else lines
    problems: list[Problem] = []
    recs: list[dict[str, Any] | None] = []
    for raw in lines:
        try:
            rec = json.loads(raw)
        except ValueError:
            rec = None
        recs.append(rec if isinstance(rec, dict) else None)
    digests = [sha256(raw) for raw in lines]
    where = {d: i for i, d in enumerate(digests)}

    def link(rec: dict[str, Any] | None) -> int | None:
        """0-based index of the line a record chains to (-1: the genesis; None: no line)."""
        prev = rec.get("prev") if rec is not None else None
        return -1 if prev == GENESIS else where.get(prev) if isinstance(prev, str) else None

    seqs = [r.get("seq") if r is not None and isinstance(r.get("seq"), int) else None for r in recs]
    pointed = {link(r) for r in recs} - {None}
    edited: set[int] = set()
    reported: set[int] = set()

    def add(i: int, message: str) -> None:
        reported.add(i)
        problems.append(Problem(i + 1, seqs[i], message))

    for i, rec in enumerate(recs):
        if i == len(recs) - 1 and not complete:
            add(i, "incomplete last line (truncated, or a write was interrupted)")
            continue
        if rec is None:
            add(i, "not a JSON record")
            continue
        missing = [k for k in FIELDS if k not in rec]
        if missing:
            add(i, f"edited: field(s) {', '.join(missing)} missing")
        elif rec["hash"] != record_hash(rec):
            edited.add(i)
            add(i, "edited: its content does not match its hash")
    for i, rec in enumerate(recs):
        if rec is None or i in reported and i not in edited:
            continue
        target = link(rec)
        if target == i - 1:
            want = 1 if i == 0 else None if seqs[i - 1] is None else seqs[i - 1] + 1
            if want is not None and seqs[i] != want and i not in reported:
                add(i, f"seq {seqs[i]} where seq {want} was expected (the chain was rebuilt)")
            continue
        gap = i > 0 and seqs[i] is not None and seqs[i - 1] is not None and seqs[i] > seqs[i - 1] + 1
        if i == 0 and target is None:
            add(i, f"records before this one are missing (the log starts at seq {seqs[i]}, not at seq 1)")
        elif target is None and gap:
            add(i, f"{_span(seqs[i - 1] + 1, seqs[i] - 1)} removed before this line")
        elif target is None:
            if i - 1 not in edited:
                add(i - 1, f"edited: line {i + 1} no longer chains to it")
        elif target == i + 1 and i + 1 < len(recs) and link(recs[i + 1]) == i - 1:
            add(i, f"reordered: swapped with line {i + 2}")
            add(i + 1, f"reordered: swapped with line {i + 1}")
        elif i - 1 in reported and target in (i - 1, i - 2):
            continue  # the consequence of a swap or an edit already named
        elif target == i - 2 and (i - 1) not in pointed:
            add(i - 1, f"inserted: not part of the chain (line {i + 1} chains past it to line {i - 1})")
        else:
            to = "the start of the log" if target == -1 else f"line {target + 1}"
            add(i, f"out of order: chains to {to}, not to line {i}")
    problems.extend(_check_head(head_path, recs, seqs, digests, complete))
    return sorted(problems, key=lambda p: (p.line, p.message))


def _span(first: int, last: int) -> str:
    return f"record seq {first}" if first == last else f"records seq {first}..{last}"


def _check_head(head_path: Path, recs: list, seqs: list, digests: list[str], complete: bool) -> list[Problem]:
    """Compare the end of the log with the head file written by the last append."""
    if not complete:
        return []  # the incomplete last line is already reported
    n = len(recs)
    if not head_path.exists():
        return [Problem(max(n, 1), None, f"{head_path.name} is missing")] if recs else []
    try:
        head = json.loads(head_path.read_text())
        hseq, hline = int(head["seq"]), str(head["line_sha256"])
    except (ValueError, KeyError, TypeError, OSError):
        return [Problem(max(n, 1), None, f"{head_path.name} cannot be read")]
    last = seqs[n - 1] if n else 0
    if last is None:
        return []  # that line is already reported
    if hseq > last:
        return [Problem(max(n, 1), last or None,
                        f"{_span(last + 1, hseq)} removed from the end (the log ends at seq {last})")]
    if hseq == last and n and digests[n - 1] != hline:
        return [Problem(n, last, "the last record is not the one written (edited or replaced)")]
    return []  # a log ahead of its head: the head write was interrupted; the next append fixes it


def read(path: str | os.PathLike[str], job: str | None = None, case: str | None = None) -> list[dict[str, Any]]:
    """Records about a job and/or a case, in log order."""
    return [r for r in AuditLog(path).records()
            if (job is None or r.get("job") == job) and (case is None or r.get("case") == case)]
