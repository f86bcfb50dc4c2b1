"""The state of one image's triage, and its planning.

image → partitions → one metadata walk per filesystem → content tasks of bounded
bytes (planned as each walk finishes) → merge → Parquet, with the whole-image hash
as one long task beside all of it, and carve chunks over the space no file holds.
Only descriptions (paths, offsets, inode lists) go through the scheduler; results
come back as small Arrow batches and are checkpointed per task
(:mod:`triage.checkpoint`), so a stopped run resumes from what it finished.

:class:`ImageRun` plans tasks (:mod:`triage.tasks` says what each kind's result or
failure does) and keeps their results; :class:`triage.driver.Driver` submits them,
for ``triage run`` and ``triage serve`` alike; :mod:`triage.finish` turns the
finished state into the result files. Progress and known-bad hits are reported
through ``notify(event, data)``: the CLI draws the bar, the dispatcher the queue.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from triage import __version__, archiveplan
from triage.carveplan import Owner, chunks, partition_extents
from triage.checkpoint import Checkpoints
from triage.knownbad import KnownBad, event
from triage.plan import plan_batches
from triage.rules.errors import InputError
from triage.rules.home import state_dir
from triage.settings import RunSettings
from triage.store import WORK, Staging
from triage.tasks import KINDS, PRIORITY_BIG, PRIORITY_MEDIA, PRIORITY_SMALL, PRIORITY_VOLUMES, PRIORITY_WALK, Task
from triage.workers.extraction import is_logical, shape
from triage.workers.formats import FORMATS
from triage.workers.image import identify
from triage.workers.known import snapshot
from triage.workers.media import MediaDigest
from triage.workers.refs import ImageRef, KnownRef, Segment, VolumeRef
from triage.workers.volumes import Partition
from triage.workers.walk import WalkResult

Notify = Callable[[str, dict], None]


def known_ref(home: str | Path | None, max_distance: int) -> KnownRef | None:
    """The known-item sets installed now, pinned for the whole run; None when there are none."""
    return snapshot(state_dir(home), max_distance)


class ImageRun:
    """The triage of one image: planned tasks, their results so far, and the accounting."""

    def __init__(self, image: str | Path, out: str | Path, *, workdir: str | Path | None = None,
                 overwrite: bool = False, priority: int = 0, carve: str | None = None,
                 extract_carved: bool = False, home: str | Path | None = None, notify: Notify | None = None,
                 settings: RunSettings | None = None, resume: bool = True) -> None:
        """``workdir``: where checkpoints go (default ``OUT/.work``, kept until the results are
        committed, so the same run started again resumes); ``resume=False`` discards them first."""
        self.started = dt.datetime.now(dt.timezone.utc)
        self.t0 = time.perf_counter()
        self.settings = settings or RunSettings.from_config(carve, extract_carved)
        self.ref: ImageRef = identify(image)
        if FORMATS.get(self.ref.format).DIRECTORY and Path(out).resolve().is_relative_to(Path(image).resolve()):
            raise InputError(f"{out}: the output directory cannot be inside the folder triaged ({image})")
        self.known = known_ref(home, self.settings.phash_distance)
        self.home = home  # ranking reads the state directory's rule file
        self.knownbad = KnownBad(self.known)
        self.staging = Staging(Path(out), overwrite=overwrite, evidence=self.ref.segments)
        self.ck = Checkpoints(Path(workdir) if workdir else self.staging.out / WORK, self.plan_stamp(),
                              fresh=not resume)
        self.extract_dir = str(self.ck.dir / "carved") if self.settings.extract else None
        self.priority = priority
        self.notify: Notify = notify or (lambda event, data: None)
        self.todo: list[Task] = []
        self.pending = 0  # tasks taken by a driver and not yet back
        self.parts: list[Partition] | None = None
        self.vols: dict[int, VolumeRef] = {}
        self.walks: dict[int, WalkResult] = {}
        self.contents: dict[int, list[pa.Table]] = {}
        self.task_errors: dict[int, dict[int, str]] = {}
        self.carved: list[pa.Table] = []
        self.expansion_refs: dict[str, object] = {}  # expand task name -> ArchiveRef (triage.archiveplan)
        self.expanded: dict[str, pa.Table] = {}      # ... -> its member rows
        self.archive_status: dict[str, str] = {}     # ... -> why its archive was not fully expanded
        self.problems: list[str] = []  # lost byte ranges (failed carve chunks); the rest come from the tables
        self.media: MediaDigest | None = None
        self.bytes_total = self.bytes_done = self.files_done = 0
        self.known_bad = 0  # hits on final rows so far (carved ones are counted when carving is merged)
        self.resumed_bytes = 0  # of bytes_done, what checkpoints of an earlier attempt held
        self.containers: list[dict] = []  # the container files' own hashes (none when the files are the media)
        if is_logical(self.ref):
            self._plan_source()
            return
        self.add(Task("media", KINDS.get("media"), self.ref, PRIORITY_MEDIA, self.ref.size))
        if not FORMATS.get(self.ref.format).MEDIA_IS_FILES:
            self.add(Task("containers", KINDS.get("containers"), self.ref, PRIORITY_MEDIA - 1))
        self.add(Task("partitions", KINDS.get("partitions"), self.ref, PRIORITY_VOLUMES))

    def plan_stamp(self) -> dict:
        """What every checkpoint depends on: a change means recomputing, never mixing."""
        sets = {s.name: f"{s.category} {s.directory}" for s in (self.known.sets if self.known else ())}
        return {"known": sets, "tool": __version__, "image": self.ref.path, "size": self.ref.size,
                "settings": self.settings.stamp()}

    # -- planning ----------------------------------------------------------------------------------
    def add(self, task: Task) -> None:
        """Count a planned task; apply its checkpointed result if there is one, else queue it."""
        self.bytes_total += task.nbytes
        saved = task.kind.load(self.ck, task)
        if saved is None:
            self.todo.append(task)
        else:
            self.resumed_bytes += task.nbytes
            task.kind.apply(self, task, saved)
        self._progress()

    def got_partitions(self, parts: list[Partition]) -> None:
        self.parts = parts
        self.vols = {p.index: VolumeRef(self.ref, p.index, p.start, p.length) for p in parts if p.walkable}
        if self.settings.carve == "all":
            self._plan_carving("all", [(0, self.ref.size)])
        elif self.settings.carve == "unalloc":
            for p in parts:
                if p.flags == "unalloc":
                    self._plan_carving(str(p.index), partition_extents(p, None, self.ref.size))
        for idx, vol in self.vols.items():
            self.contents[idx], self.task_errors[idx] = [], {}
        for idx, vol in self.vols.items():
            self.add(Task(f"walk-{idx}", KINDS.get("walk"), vol, PRIORITY_WALK))

    def got_walk(self, walk: WalkResult) -> None:
        idx, s = walk.partition, self.settings
        self.walks[idx] = walk
        if s.carve == "unalloc":
            part = next(p for p in self.parts or [] if p.index == idx)
            self._plan_carving(str(idx), partition_extents(part, walk, self.ref.size))
        batches = plan_batches(self.vols[idx], walk.table, s.batch_bytes, s.batch_files, s.options, self.known,
                               s.split_bytes)
        for i, batch in enumerate(batches):
            name = f"content-{idx}-{i:05d}"
            if isinstance(batch, Segment):
                self.add(Task(name, KINDS.get("segment"), batch, PRIORITY_BIG, batch.item.size, 1))
            else:
                prio = PRIORITY_BIG if batch.nbytes >= s.batch_bytes else PRIORITY_SMALL
                self.add(Task(name, KINDS.get("content"), batch, prio, batch.nbytes, len(batch.items)))

    def _plan_source(self) -> None:
        """A logical source (tar, zip, UFDR, folder): its own hash and its listing; the listing stands
        for the volume table and the walk, and plans the content tasks (``got_listing``). No carving:
        a logical source has no unallocated space."""
        self.add(Task("media", KINDS.get("source-hash"), self.ref, PRIORITY_MEDIA, self.ref.size))
        self.add(Task("walk-0", KINDS.get("source-walk"), self.ref, PRIORITY_WALK))

    def got_listing(self, walk: WalkResult) -> None:
        fmt = FORMATS.get(self.ref.format)
        desc = shape(walk.table.column("path").to_pylist(), self.ref.format)
        self.parts = [Partition(0, "whole source", 0, self.ref.size, "alloc", desc, fmt.VOLUME_SYSTEM)]
        self.vols = {0: VolumeRef(self.ref, 0, 0, self.ref.size)}
        self.contents[0], self.task_errors[0] = [], {}
        self.walks[0] = walk
        s = self.settings
        # a compressed stream (tar.gz): a few tasks, each reading the stream from its start (STREAM_TASKS);
        # a huge member gets a task of its own (no segment chains for members)
        bound = (s.batch_bytes, s.batch_files)
        if not fmt.RANDOM_ACCESS:
            content = sum(walk.table.column("size").to_pylist())
            bound = (max(s.batch_bytes, -(-content // fmt.STREAM_TASKS)), 1 << 62)
        for i, batch in enumerate(plan_batches(self.vols[0], walk.table, *bound, s.options, self.known)):
            prio = PRIORITY_BIG if batch.nbytes >= s.batch_bytes else PRIORITY_SMALL
            self.add(Task(f"content-0-{i:05d}", KINDS.get("members"), batch, prio, batch.nbytes, len(batch.items)))

    def _plan_carving(self, tag: str, extents: list[tuple[int, int]]) -> None:
        s = self.settings
        for i, chunk in enumerate(chunks(extents, self.ref, s.carve_chunk, s.carve_overlap, s.options,
                                         self.extract_dir, self.known)):
            self.add(Task(f"carve-{tag}-{i:05d}", KINDS.get("carve"), chunk, PRIORITY_SMALL, chunk.nbytes))

    # -- results -----------------------------------------------------------------------------------
    def got_rows(self, idx: int, table: pa.Table) -> None:
        """Content rows of partition ``idx``: final as they are, so their hits are announced now."""
        self.contents[idx].append(table)
        paths = self.walks[idx].table.column("path")
        for r in self.knownbad.hits(table):
            self.hit(idx, paths[r["row"]].as_py(), r)
        archiveplan.plan_expansions(self, idx, table)  # archives among them: their members next

    def rows_failed(self, idx: int, rows: list[int], why: str) -> None:
        for row in rows:
            self.task_errors[idx][row] = why

    def hit(self, partition: int, path: str, row: dict) -> None:
        self.known_bad += 1
        self.notify("known-bad", event(self.ref.path, partition, path, row))

    def owner(self) -> Owner:
        """Which volume-table entry a carved object's offset lies in."""
        return Owner(self.parts or [])

    def advance(self, task: Task, nbytes: int) -> None:
        """Part of a task's bytes are done (a link of a chain) while the task goes on."""
        task.reported += nbytes
        self.bytes_done += nbytes

    def complete(self, task: Task) -> None:
        """A task ended (result or failure): what is left of its bytes and files is done."""
        self.bytes_done += task.nbytes - task.reported
        task.reported = task.nbytes
        self.files_done += task.files

    # -- driving -----------------------------------------------------------------------------------
    def take(self, limit: int | None = None) -> list[Task]:
        """Tasks to submit now, most urgent first (the image hash and walks before content)."""
        self.todo.sort(key=lambda t: -t.priority)
        n = len(self.todo) if limit is None else max(0, min(len(self.todo), limit))
        out, self.todo = self.todo[:n], self.todo[n:]
        self.pending += len(out)
        return out

    def task_done(self, task: Task, outcome: object) -> None:
        """A submitted task is back: its kind says what its result, or its failure, does."""
        self.pending -= 1
        if isinstance(outcome, BaseException):
            task.kind.failed(self, task, outcome)
        else:
            task.kind.done(self, task, outcome)
        self._progress()

    @property
    def finished(self) -> bool:
        return (not self.todo and not self.pending and self.parts is not None and self.media is not None
                and len(self.walks) == len(self.vols))

    def _progress(self) -> None:
        self.notify("progress", {"image": self.ref.path, "bytes_done": self.bytes_done,
                                 "bytes_total": self.bytes_total, "files_done": self.files_done})

    def abort(self) -> None:
        """Stopped or failed: no results; the checkpoints stay for the next attempt."""
        self.staging.abort()
        self.ck.close()
