"""The dispatcher: works the queue's backlog by case priority on one shared Dask cluster.

One process per state directory (an exclusive lock file proves it), so at start
every job left ``running`` is an orphan of a stopped or killed dispatcher and goes
back to the queue; its per-task checkpoints (``<home>/jobs/<id>/work``) make it
resume where it was, and the final tables are merged from them, byte-identical
to an uninterrupted run.

Many jobs run at once. Each keeps a bounded window of tasks in flight, submitted
with Dask priority ``job priority x 1000 + task priority``: when a worker frees
up the scheduler hands it the most urgent ready task, so a ``critical`` job takes
the workers as soon as their current tasks end, without killing anything, and a
priority change applies from the next task on. Progress, cancel requests and
priority changes go through the queue database; every action on a job goes to
the audit log.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.config

from triage import config, jobopts
from triage.audit import AuditLog
from triage.driver import Driver
from triage.finish import RunResult, finalize
from triage.keystore import Handover, KeyStore
from triage.queue import PRIORITIES, Job, Queue
from triage.runstate import ImageRun
from triage.rules.errors import InputError, TriageError
from triage.rules.home import state_dir
from triage.store import out_dirs

log = logging.getLogger(__name__)


@dataclass
class _Active:
    job: Job
    runs: list[ImageRun]
    results: list[RunResult] = field(default_factory=list)
    applied: str = ""  # the priority its tasks are submitted at
    last_report: float = 0.0
    escalated: bool = False

    @property
    def bytes_done(self) -> int:
        return sum(r.bytes_done for r in self.runs)

    @property
    def bytes_total(self) -> int:
        return sum(r.bytes_total for r in self.runs)

    @property
    def files_done(self) -> int:
        return sum(r.files_done for r in self.runs)

    @property
    def known_bad(self) -> int:
        return sum(r.known_bad for r in self.runs)


class DispatcherLockedError(TriageError):
    exit_code = 3


class Dispatcher:
    def __init__(self, client: Any, home: str | None = None, *, max_jobs: int | None = None,
                 window: int | None = None, poll: float | None = None,
                 escalate_to: str | None = "", once: bool = False) -> None:
        self.client = client
        self.home = state_dir(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.queue = Queue.at(self.home)
        self.audit = AuditLog.at(self.home)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.max_jobs = max_jobs or int(config.get("dispatcher.max-jobs"))
        nthreads = sum(client.nthreads().values()) or 1
        self.window = window or max(2, int(config.get("dispatcher.window-per-worker")) * nthreads)
        self.poll = poll if poll is not None else float(config.get("dispatcher.poll-seconds"))
        self.escalate_to = config.get("dispatcher.escalate-known-bad-to") if escalate_to == "" else escalate_to
        self.once = once
        self.active: dict[str, _Active] = {}
        self.driver = Driver(client, self.window)
        self.keys = Handover(client, KeyStore(self.home))  # `submit --key`: to the workers, never into the queue
        self._stop = False
        self._lock_fd: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def _take_lock(self) -> None:
        fd = os.open(self.home / "dispatcher.lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DispatcherLockedError(f"{self.home}: another dispatcher is already working this queue")
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.owner}\n".encode())
        self._lock_fd = fd

    def stop(self, *_: Any) -> None:
        self._stop = True

    def serve(self) -> None:
        """Work the queue until stopped (SIGTERM/SIGINT), or with ``once`` until it is empty."""
        self._take_lock()
        for job in self.queue.requeue_orphans():
            if job.state == "cancelled":  # its cancel was asked for while no dispatcher ran
                self.keys.take_back(job.id, wipe=True)
                shutil.rmtree(self._job_dir(job), ignore_errors=True)  # partial output and checkpoints
                self.audit.append_job("cancel", job, details={"when": "dispatcher restart"})
                continue
            log.info("requeued orphaned job %s", job.id)
            self.audit.append_job("requeue", job, details={"reason": "dispatcher restarted"})
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._loop()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            for act in list(self.active.values()):  # stopped: finished tasks are checkpointed
                for run in act.runs:
                    self.driver.drop(run)
                    run.abort()
                self.keys.take_back(act.job.id, wipe=False)  # requeued: it will need them again
            for job in self.queue.requeue_orphans():  # back in line now, not "running" with no dispatcher
                self.audit.append_job("requeue", job, details={"reason": "dispatcher stopped"})
            self.queue.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)

    def _loop(self) -> None:
        while not self._stop:
            self._claim()
            if not self.active:
                if self.once:
                    return
                time.sleep(self.poll)
                continue
            runs = [r for act in self.active.values() for r in act.runs]
            for run, exc in self.driver.step(runs, timeout=self.poll):
                act = next((a for a in self.active.values() if run in a.runs), None)
                if act is not None:  # one job's failure (a lost worker, a full disk) must not stop the backlog
                    self._abandon(act, f"{run.ref.path}: {exc}" if isinstance(exc, TriageError)
                                  else f"{run.ref.path}: {type(exc).__name__}: {exc}")
            for act in list(self.active.values()):
                self._escalate(act)
            self._finish_ready()
            self._sync()

    # -- claiming and starting -------------------------------------------------------------------
    def _claim(self) -> None:
        self.keys.sweep(self._state_of)
        while len(self.active) < self.max_jobs:
            job = self.queue.claim_next(self.owner)
            if job is None:
                return
            try:
                self._start(job)
            except Exception as exc:  # noqa: BLE001 - fail this job, keep working the queue
                self._fail(job, str(exc) if isinstance(exc, TriageError) else f"{type(exc).__name__}: {exc}")

    def _job_dir(self, job: Job) -> Path:
        return self.home / "jobs" / job.id

    def _start(self, job: Job) -> None:
        jdir = self._job_dir(job)
        names = _result_names(job.images)
        with dask.config.set(jobopts.config_for(self.home, job.id)):  # submit's options (--no-vss)
            runs = [ImageRun(img, jdir / "results" / name if name else jdir / "results",
                             workdir=jdir / "work" / (name or "image"), overwrite=True,
                             priority=PRIORITIES[job.priority], home=self.home)
                    for img, name in zip(job.images, names)]
        act = _Active(job, runs, applied=job.priority)
        self.active[job.id] = act
        self.queue.update_progress(job, results_dir=str(jdir / "results"), bytes_total=act.bytes_total,
                                   bytes_done=act.bytes_done, owner=self.owner)
        keyed = self.keys.give(job)
        self.audit.append_job("start", job, details={"attempt": job.attempts, "dispatcher": self.owner,
                                                     "resumed_bytes": act.bytes_done,
                                                     **({"keys_for_partitions": keyed} if keyed else {})})
        self._escalate(act)  # hits already in a resumed job's checkpoints count too

    def _finish_ready(self) -> None:
        for jid, act in list(self.active.items()):
            if not all(r.finished for r in act.runs):
                continue
            try:
                act.results = [finalize(r) for r in act.runs]
            except Exception as exc:  # noqa: BLE001 - this job failed; the backlog goes on
                self._abandon(act, str(exc) if isinstance(exc, (TriageError, OSError))
                              else f"{type(exc).__name__}: {exc}")
                continue
            self._write_reports(act)
            summary = _job_summary(act.results)
            self._escalate(act, summary["known_bad_hits"])  # carved hits count once carving is merged
            self._escalate_on_tier(act)
            self.queue.update_progress(act.job, bytes_done=act.bytes_done, files_done=act.files_done,
                                       owner=self.owner)
            self.queue.finish(act.job, self._job_dir(act.job) / "results", summary,
                              known_bad_hits=summary["known_bad_hits"], owner=self.owner)
            for res in act.results:
                self.audit.append_job("finish", act.job, image_hash=res.summary["image"]["sha256"],
                                      details={"image": res.image, "exit_code": res.exit_code,
                                               "files": res.summary["files"]["entries"], "out": str(res.out)})
            shutil.rmtree(self._job_dir(act.job) / "work", ignore_errors=True)
            self.keys.take_back(jid, wipe=True)
            del self.active[jid]

    def _sync(self) -> None:
        """Report progress; act on cancel requests and priority changes made through the queue."""
        now = time.monotonic()
        for jid, act in list(self.active.items()):
            if now - act.last_report < self.poll:
                continue
            act.last_report = now
            try:
                job = self.queue.update_progress(act.job, bytes_done=act.bytes_done, bytes_total=act.bytes_total,
                                                 files_done=act.files_done, known_bad_hits=act.known_bad,
                                                 owner=self.owner)
            except InputError as exc:  # the job was removed or changed under us (not by a dispatcher)
                log.warning("%s: %s", jid, exc)
                self._drop(act)
                continue
            act.job = job
            if job.cancel_requested:
                self._drop(act)
                self.keys.take_back(job.id, wipe=True)
                shutil.rmtree(self._job_dir(job), ignore_errors=True)  # nothing half-done stays
                self.queue.mark_cancelled(job, owner=self.owner)
                self.audit.append_job("cancel", job, details={"when": "running", "bytes_done": act.bytes_done})
                continue
            if job.priority != act.applied:
                act.applied = job.priority
                for run in act.runs:
                    run.priority = PRIORITIES[job.priority]  # new tasks go out at it; those in flight finish

    def _escalate(self, act: _Active, hits: int | None = None) -> None:
        """The configured rule: a case with a known-bad hit is raised at once, all its jobs."""
        hits = act.known_bad if hits is None else hits
        if hits:
            self._raise_case(act, "known-bad hit", {"known_bad_hits": hits})

    def _escalate_on_tier(self, act: _Active) -> None:
        """``dispatcher.escalate-on``: a finished device ranked at that tier or above raises the rest of its case."""
        from triage.ranking import escalation_due

        ranking = escalation_due(act.results, config.get("dispatcher.escalate-on"))
        if ranking is not None:
            self._raise_case(act, f"device tier {ranking['tier']}",
                             {"device_score": ranking["score"], "reasons": ranking.get("reasons", [])},
                             others_only=True)  # the device itself is done: nothing of it is left to hurry

    def _raise_case(self, act: _Active, rule: str, details: dict[str, Any], others_only: bool = False) -> None:
        if not self.escalate_to or act.escalated:
            return
        act.escalated = True
        target = PRIORITIES[self.escalate_to]
        jobs = [j for j in self.queue.list(act.job.case, active_only=True)
                if PRIORITIES[j.priority] < target and not (others_only and j.id == act.job.id)]
        for j in jobs:
            for raised in self.queue.prioritize(j.id, self.escalate_to):
                self.audit.append_job("escalate", raised, details={
                    "from": j.priority, "to": self.escalate_to, "rule": rule, "trigger_job": act.job.id, **details})
                if raised.id in self.active:
                    for run in self.active[raised.id].runs:
                        run.priority = target  # new tasks go out at it; those in flight finish
                    self.active[raised.id].applied = raised.priority

    def _write_reports(self, act: _Active) -> None:
        """The configured reports into each results folder; a report that fails leaves the results standing."""
        from triage.reports import write_reports

        formats = list(config.get("reports.formats") or [])
        for res in act.results if formats else []:
            try:
                write_reports(res.out, formats, job=act.job)
            except TriageError as exc:
                log.warning("%s: %s", act.job.id, exc)

    def _drop(self, act: _Active) -> None:
        for run in act.runs:
            self.driver.drop(run)
            run.abort()
        self.keys.take_back(act.job.id, wipe=False)
        self.active.pop(act.job.id, None)

    def _abandon(self, act: _Active, reason: str) -> None:
        self._drop(act)
        self._fail(act.job, reason)

    def _fail(self, job: Job, reason: str) -> None:
        reason = " ".join(reason.split())
        self.queue.fail(job, reason, owner=self.owner)
        self.audit.append_job("fail", job, details={"reason": reason})
        self.keys.take_back(job.id, wipe=True)
        self.active.pop(job.id, None)

    def _state_of(self, job_id: str) -> str | None:
        try:
            return self.queue.get(job_id).state
        except InputError:  # removed from the queue
            return None


def _result_names(images: tuple[str, ...]) -> list[str]:
    if len(images) == 1:
        return [""]
    return [p.name for p in out_dirs(list(images), Path("."))]


def _job_summary(results: list[RunResult]) -> dict[str, Any]:
    return {
        "images": [{"out": str(r.out), **r.summary} for r in results],
        "exit_code": max(r.exit_code for r in results),
        "known_bad_hits": sum(r.summary["known_bad_hits"] for r in results),  # as triage.knownbad counts
        "problems": [p for r in results for p in r.problems],
    }
