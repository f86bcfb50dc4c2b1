"""Per-task results on disk, so a stopped run resumes from what was already computed.

Each finished task's result is written atomically (temporary name, then rename)
under the run's work directory, named by the task's deterministic identity
(``walk-3``, ``content-3-0012``). A restarted run loads what exists and submits
only the rest; the final tables are merged from these files, so an interrupted
run ends byte-identical to an uninterrupted one. A work directory made under a
different plan (other batch sizes, other tool version, other known-item sets) is
discarded, never mixed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa

from triage.rules.errors import InputError
from triage.workers.media import MediaDigest
from triage.workers.volumes import Partition
from triage.workers.walk import WalkResult


class Checkpoints:
    """One run's work folder. Held under an exclusive lock while the run goes on, so two
    runs into the same folder cannot mix their checkpoints."""

    def __init__(self, workdir: Path, plan: dict[str, Any], fresh: bool = False) -> None:
        self.dir = Path(workdir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.dir.parent / f"{self.dir.name}.lock", os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise InputError(f"{self.dir}: cannot create the work folder: {exc.strerror}") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise InputError(f"{self.dir.parent}: another triage run is writing there now") from None
        stamp = self.dir / "plan.json"
        text = json.dumps(plan, sort_keys=True)
        self.resumed = not fresh and stamp.exists() and stamp.read_text() == text
        if stamp.exists() and not self.resumed:
            shutil.rmtree(self.dir)
            self.dir.mkdir(parents=True)
        if not stamp.exists():
            self._atomic(stamp, text.encode())

    def close(self, remove: bool = False) -> None:
        """Release the lock; ``remove``: the results are committed, the checkpoints are done with."""
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)
            (self.dir.parent / f"{self.dir.name}.lock").unlink(missing_ok=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def _atomic(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _write_table(self, name: str, batch: pa.RecordBatch | pa.Table, meta: dict[str, Any] | None = None) -> None:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if meta is not None:
            table = table.replace_schema_metadata({b"triage": json.dumps(meta, sort_keys=True).encode()})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        self._atomic(self.dir / f"{name}.arrow", sink.getvalue().to_pybytes())

    def _read_table(self, name: str) -> tuple[pa.Table, dict[str, Any]] | None:
        path = self.dir / f"{name}.arrow"
        if not path.exists():
            return None
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
        meta = json.loads((table.schema.metadata or {}).get(b"triage", b"{}"))
        return table.replace_schema_metadata(None), meta

    # -- typed accessors -------------------------------------------------------------------------
    def save_media(self, m: MediaDigest) -> None:
        self._atomic(self.dir / "media.json", json.dumps(m.__dict__, sort_keys=True).encode())

    def load_media(self) -> MediaDigest | None:
        p = self.dir / "media.json"
        return MediaDigest(**json.loads(p.read_text())) if p.exists() else None

    def save_json(self, name: str, value: Any) -> None:
        self._atomic(self.dir / f"{name}.json", json.dumps(value, sort_keys=True).encode())

    def load_json(self, name: str) -> Any | None:
        p = self.dir / f"{name}.json"
        return json.loads(p.read_text()) if p.exists() else None

    def save_partitions(self, parts: list[Partition]) -> None:
        self._atomic(self.dir / "partitions.json", json.dumps([p.__dict__ for p in parts]).encode())

    def load_partitions(self) -> list[Partition] | None:
        p = self.dir / "partitions.json"
        return [Partition(**d) for d in json.loads(p.read_text())] if p.exists() else None

    def save_walk(self, w: WalkResult) -> None:
        self._write_table(f"walk-{w.partition}", w.table,
                          {"filesystem": w.filesystem, "status": w.status, "allocated": w.allocated})

    def load_walk(self, index: int) -> WalkResult | None:
        got = self._read_table(f"walk-{index}")
        if got is None:
            return None
        table, meta = got
        batch = table.combine_chunks().to_batches()
        from triage.workers.walk import WALK_SCHEMA

        rb = batch[0] if batch else pa.RecordBatch.from_pylist([], schema=WALK_SCHEMA)
        allocated = tuple((int(a), int(b)) for a, b in meta.get("allocated", ()))
        return WalkResult(index, meta.get("filesystem"), meta.get("status", "ok"), rb, allocated)

    def save_result(self, name: str, batch: pa.RecordBatch | pa.Table) -> None:
        self._write_table(name, batch)

    def load_result(self, name: str) -> pa.Table | None:
        got = self._read_table(name)
        return None if got is None else got[0]
