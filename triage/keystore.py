"""Volume keys given with ``triage submit --key``, kept apart from everything else a job writes.

A queued job may wait hours for a dispatcher, so its keys must be stored somewhere;
not in the queue database (the dashboard, ``status --json`` and backups read it),
not in the audit log (append-only, copied into reports), not in checkpoints. They go
to ``<home>/keys/<job id>.keys``: a folder only the owner can enter (0700), one file
per job only the owner can read (0600), written under a temporary name and renamed
so a dispatcher never reads half a file. The dispatcher reads it when it starts the
job, hands the keys to the workers as a worker plugin (never inside a task), and
wipes the file (overwritten with zeros, then removed) when the job is done, failed
or cancelled; a job requeued because its dispatcher stopped keeps its keys.
Overwriting cannot promise the bytes are gone from a journalled filesystem or an
SSD: on a shared machine put the state directory on an encrypted disk.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from triage.rules.errors import InputError
from triage.workers.unlock import KEYRING, VolumeKey

log = logging.getLogger(__name__)

SUFFIX = ".keys"


class KeyStore:
    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "keys"

    def _path(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise InputError(f"not a job id: {job_id!r}")
        return self.dir / f"{job_id}{SUFFIX}"

    def put(self, job_id: str, keys: list[tuple[int, VolumeKey]]) -> None:
        """Store (replace) the job's keys: partition index -> key."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        data = json.dumps([{"partition": i, "kind": k.kind, "secret": k.secret} for i, k in keys]).encode()
        tmp = self.dir / f".{job_id}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path(job_id))

    def get(self, job_id: str) -> list[tuple[int, VolumeKey]]:
        """The job's keys, or [] when none were given (or they were already wiped)."""
        path = self._path(job_id)
        try:
            items = json.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: key store unreadable ({type(exc).__name__})") from None  # never its text
        return [(int(d["partition"]), VolumeKey(d["kind"], d["secret"])) for d in items]

    def partitions(self, job_id: str) -> list[int]:
        """Which partitions have a key: what the audit record may say about them."""
        return sorted(i for i, _ in self.get(job_id))

    def wipe(self, job_id: str) -> bool:
        """Overwrite the job's key file with zeros and remove it; True if there was one."""
        path = self._path(job_id)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return False
        try:
            size = os.fstat(fd).st_size
            os.write(fd, b"\0" * size)
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        log.info("wiped the volume keys of job %s", job_id)
        return True

    def job_ids(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name.removesuffix(SUFFIX) for p in self.dir.glob(f"*{SUFFIX}"))


class Handover:
    """The dispatcher's side: a job's keys reach every worker as a plugin while it runs, and go when it ends."""

    FINAL = ("done", "failed", "cancelled")

    def __init__(self, client: Any, store: KeyStore) -> None:
        self.client = client
        self.store = store
        self._given: set[str] = set()

    @staticmethod
    def plugin_name(job_id: str) -> str:
        return f"{KEYRING}-{job_id}"

    def give(self, job: Any) -> list[int]:
        """Install the job's keys on the workers (present and future); the partitions they are for."""
        keys = self.store.get(job.id)
        if not keys:
            return []
        from triage.workers.keyring import Keyring  # imports distributed: only where keys are given

        ring = Keyring({(str(Path(img)), i): k for img in job.images for i, k in keys})
        self.client.register_plugin(ring, name=self.plugin_name(job.id))
        self._given.add(job.id)
        return sorted(i for i, _ in keys)

    def take_back(self, job_id: str, wipe: bool) -> None:
        """Remove the job's keys from the workers; with ``wipe`` (the job ended) also from the store."""
        if job_id in self._given:
            self._given.discard(job_id)
            try:
                self.client.unregister_worker_plugin(self.plugin_name(job_id))
            except (OSError, ValueError, KeyError, RuntimeError) as exc:  # workers gone: nothing holds them
                log.warning("%s: removing the volume keys from the workers failed: %s", job_id, type(exc).__name__)
        if wipe:
            self.store.wipe(job_id)

    def sweep(self, state_of: Callable[[str], str | None]) -> None:
        """Wipe the keys of jobs that ended without a dispatcher seeing it (cancelled while queued, removed)."""
        for job_id in self.store.job_ids():
            if job_id not in self._given and state_of(job_id) in (*self.FINAL, None):
                self.store.wipe(job_id)
