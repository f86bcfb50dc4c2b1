"""The kinds of task a run is made of, each one small object in a registry.

A kind says how its task is submitted (the worker function and a priority), how
its result is kept (checkpoint load/save, so a resumed run skips it), what a
result does to the run, and what a failure does: the image hash and a walk turn a
failure into a status; a content batch, a link of a segment chain or a carve chunk
into a problem on their files or bytes; the partition listing alone fails the image
(no volume system and no filesystem: nothing else can be planned). The run
(:mod:`triage.runstate`) plans tasks; the driver (:mod:`triage.driver`) submits
them; nothing here knows about futures or queues.

Accounting: a task carries the bytes and files it stands for, fixed when it is
planned; :meth:`ImageRun.complete` counts what is left of them when it ends, however
it ends, so ``bytes_done`` reaches ``bytes_total`` exactly when the run is finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from triage import archiveplan
from triage.rules.errors import ImageError, TriageError, describe
from triage.rules.registry import Registry
from triage.workers.archives import expand_archive, expand_archives
from triage.workers.carving import carve_chunk
from triage.workers.containers import hash_container_files
from triage.workers.extraction import hash_source, read_members, walk_source
from triage.workers.content import read_content, read_segment
from triage.workers.media import MediaDigest, hash_media
from triage.workers.refs import Segment, VolumeRef
from triage.workers.volumes import Partition, list_partitions
from triage.workers.vss import list_snapshots, store_number
from triage.workers.walk import WALK_SCHEMA, WalkResult, walk_filesystem

if TYPE_CHECKING:
    from triage.checkpoint import Checkpoints
    from triage.runstate import ImageRun

# task priorities within a job; the job's own priority is added on top (x1000)
PRIORITY_MEDIA, PRIORITY_VOLUMES, PRIORITY_WALK, PRIORITY_BIG, PRIORITY_SMALL = 100, 90, 80, 10, 0


@dataclass(eq=False)
class Task:
    name: str           # checkpoint name, unique within the run
    kind: TaskKind
    arg: Any            # the description the worker function gets
    priority: int
    nbytes: int = 0     # bytes of evidence this task stands for (a segment chain: the whole file)
    files: int = 0      # files it reads content of
    reported: int = 0   # bytes already counted as done (earlier links of a chain)


class TaskKind:
    """Base: a result is checkpointed as an Arrow table, then applied; subclasses say the rest."""

    NAME: ClassVar[str]
    func: ClassVar[Callable[[Any], Any]]

    def load(self, ck: Checkpoints, task: Task) -> Any | None:
        return ck.load_result(task.name)

    def save(self, ck: Checkpoints, task: Task, result: Any) -> None:
        ck.save_result(task.name, result)

    def done(self, run: ImageRun, task: Task, result: Any) -> None:
        """A fresh result: keep it, then apply it exactly as a restored one."""
        result = self.table(result)
        self.save(run.ck, task, result)
        self.apply(run, task, result)

    def table(self, result: Any) -> Any:
        return pa.Table.from_batches([result]) if isinstance(result, pa.RecordBatch) else result

    def apply(self, run: ImageRun, task: Task, result: Any) -> None:
        raise NotImplementedError

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        raise NotImplementedError


KINDS: Registry[TaskKind] = Registry("task kind")


@KINDS.register("media", instance=True)
class MediaHash(TaskKind):
    """The whole-image md5/sha256 (and an E01's stored-hash check): one long task beside everything."""

    func = staticmethod(hash_media)

    def load(self, ck: Checkpoints, task: Task) -> MediaDigest | None:
        return ck.load_media()

    def save(self, ck: Checkpoints, task: Task, result: MediaDigest) -> None:
        ck.save_media(result)

    def apply(self, run: ImageRun, task: Task, result: MediaDigest) -> None:
        run.media = result
        run.complete(task)

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        self.done(run, task, MediaDigest(run.ref.size, "", "", error=f"image hash task failed: {describe(exc)}"))


@KINDS.register("containers", instance=True)
class ContainerHash(TaskKind):
    """md5/sha256 of a container's own files (VMDK extents, parent disks, E01 segments) as they lie on
    disk, beside the media hash: the evidence as acquired and the disk it holds are both on record."""

    func = staticmethod(hash_container_files)

    def load(self, ck: Checkpoints, task: Task) -> list[dict] | None:
        return ck.load_json(task.name)

    def save(self, ck: Checkpoints, task: Task, result: list[dict]) -> None:
        ck.save_json(task.name, result)

    def table(self, result: Any) -> list[dict]:
        return [d if isinstance(d, dict) else asdict(d) for d in result]

    def apply(self, run: ImageRun, task: Task, result: list[dict]) -> None:
        run.containers = result
        run.complete(task)

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        run.problems.append(f"{run.ref.path}: container files not hashed: {describe(exc)}")
        run.containers = []
        run.complete(task)


@KINDS.register("partitions", instance=True)
class Partitions(TaskKind):
    """The volume system; its result plans the walks and the carving."""

    func = staticmethod(list_partitions)

    def load(self, ck: Checkpoints, task: Task) -> Any:
        return ck.load_partitions()

    def save(self, ck: Checkpoints, task: Task, result: Any) -> None:
        ck.save_partitions(result)

    def apply(self, run: ImageRun, task: Task, result: Any) -> None:
        run.complete(task)
        run.got_partitions(result)

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        # no volume system and no filesystem: nothing else can be planned, the image is unusable
        if isinstance(exc, TriageError):
            raise exc
        raise ImageError(f"{run.ref.path}: partitions could not be listed: {describe(exc)}") from exc


@KINDS.register("walk", instance=True)
class Walk(TaskKind):
    """One filesystem's metadata walk; its result plans that partition's content tasks."""

    func = staticmethod(walk_filesystem)

    def load(self, ck: Checkpoints, task: Task) -> WalkResult | None:
        return ck.load_walk(task.arg.index)

    def save(self, ck: Checkpoints, task: Task, result: WalkResult) -> None:
        ck.save_walk(result)

    def apply(self, run: ImageRun, task: Task, result: WalkResult) -> None:
        run.complete(task)
        run.got_walk(result)
        if result.filesystem == "NTFS" and store_number(result.partition) is None and run.settings.vss:
            run.add(Task(f"vss-{result.partition}", KINDS.get("vss"), run.vols[result.partition], PRIORITY_WALK))

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        empty = pa.RecordBatch.from_pylist([], schema=WALK_SCHEMA)
        self.done(run, task, WalkResult(task.arg.index, None, f"walk failed: {describe(exc)}", empty))


@KINDS.register("vss", instance=True)
class Snapshots(TaskKind):
    """The Volume Shadow Copies of one NTFS volume (:mod:`triage.workers.vss`), planned when its walk says
    NTFS: each becomes a volume-table row and a walk of its own. Not checkpointed: the listing is a few
    small reads, and applying a saved one while a resumed run replans its walks would change the volume
    table under that loop; the snapshots' walks and content tasks are checkpointed like any other."""

    func = staticmethod(list_snapshots)

    def load(self, ck: Checkpoints, task: Task) -> None:
        return None

    def save(self, ck: Checkpoints, task: Task, result: Any) -> None:
        pass

    def table(self, result: Any) -> list[Partition]:
        return list(result)

    def apply(self, run: ImageRun, task: Task, result: list[Partition]) -> None:
        run.complete(task)
        if not result:
            return
        assert run.parts is not None
        # the volume table stays in one order whatever order the walks finish in: snapshots last, by index
        old = [p for p in run.parts if p.layer == "vss"]
        run.parts = [p for p in run.parts if p.layer != "vss"] + sorted(old + result, key=lambda p: p.index)
        for p in result:
            vol = VolumeRef(run.ref, p.index, p.start, p.length)
            run.vols[p.index] = vol
            run.contents[p.index], run.task_errors[p.index] = [], {}
            run.add(Task(f"walk-{p.index}", KINDS.get("walk"), vol, PRIORITY_WALK))

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        run.complete(task)
        run.problems.append(f"partition {task.arg.index} (byte {task.arg.offset}): Volume Shadow Copies not "
                            f"listed: {describe(exc)}")


@KINDS.register("content", instance=True)
class ContentBatchKind(TaskKind):
    """Hash, type and perceptual-hash a batch of files: rows joined to the walk at the end."""

    func = staticmethod(read_content)

    def rows(self, task: Task) -> list[int]:
        return [it.row for it in task.arg.items]

    def apply(self, run: ImageRun, task: Task, result: pa.Table) -> None:
        run.complete(task)
        run.got_rows(task.arg.volume.index, result)

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        run.complete(task)
        run.rows_failed(task.arg.volume.index, self.rows(task), f"content task failed: {describe(exc)}")


@KINDS.register("segment", instance=True)
class SegmentChain(ContentBatchKind):
    """One huge file read by a chain of bounded links, each handing the hash state to the next."""

    func = staticmethod(read_segment)

    def rows(self, task: Task) -> list[int]:
        return [task.arg.item.row]

    def done(self, run: ImageRun, task: Task, result: Any) -> None:
        if isinstance(result, Segment):  # the file goes on: the next link, with the hash state
            run.advance(task, task.arg.nbytes)
            task.arg = result
            run.todo.append(task)
            return
        super().done(run, task, result)


@KINDS.register("carve", instance=True)
class CarveChunkKind(TaskKind):
    """Scan one chunk of the image for objects; rows are merged (deduplicated) at the end."""

    func = staticmethod(carve_chunk)

    def apply(self, run: ImageRun, task: Task, result: pa.Table) -> None:
        run.complete(task)
        run.carved.append(result)
        archiveplan.plan_carved(run, result, task.name)

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        run.complete(task)
        run.problems.append(f"carving bytes {task.arg.start}-{task.arg.end} failed: {describe(exc)}")


# -- logical sources (a tar, zip, UFDR or folder of a device's files; triage.workers.extraction) -----------

@KINDS.register("source-hash", instance=True)
class SourceHash(MediaHash):
    """The source's own md5/sha256 (the archive file as received, or a folder's manifest): its image hash."""

    func = staticmethod(hash_source)


@KINDS.register("source-walk", instance=True)
class SourceWalk(Walk):
    """The source's listing as partition 0's walk; it stands for the volume table too (one volume)."""

    func = staticmethod(walk_source)

    def load(self, ck: Checkpoints, task: Task) -> WalkResult | None:
        return ck.load_walk(0)

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        empty = pa.RecordBatch.from_pylist([], schema=WALK_SCHEMA)
        self.done(run, task, WalkResult(0, None, f"listing failed: {describe(exc)}", empty))

    def apply(self, run: ImageRun, task: Task, result: WalkResult) -> None:
        run.complete(task)
        run.got_listing(result)


@KINDS.register("members", instance=True)
class MemberBatch(ContentBatchKind):
    """Members of a logical source read into the digester: rows joined to the listing at the end."""

    func = staticmethod(read_members)
@KINDS.register("expand", instance=True)
class ExpandArchive(TaskKind):
    """List and digest the members of an archive found (zip, tar, gzip, 7z), to ``archives.depth``:
    rows added to the result; a failure is a status on the archive's own row."""

    func = staticmethod(expand_archive)

    def apply(self, run: ImageRun, task: Task, result: pa.Table) -> None:
        run.complete(task)
        archiveplan.got_expansion(run, task.name, result)

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        run.complete(task)
        archiveplan.expansion_failed(run, task.name, f"expand task failed: {describe(exc)}")


@KINDS.register("expand-batch", instance=True)
class ExpandArchives(TaskKind):
    """Several archives (those one carve chunk found) expanded in turn by one task; each keeps its own
    rows and status as if it had had its own expand task, a failure of the whole task included."""

    func = staticmethod(expand_archives)

    def apply(self, run: ImageRun, task: Task, result: pa.Table) -> None:
        run.complete(task)
        archiveplan.got_batch(run, task.arg, result)

    def failed(self, run: ImageRun, task: Task, exc: BaseException) -> None:
        run.complete(task)
        archiveplan.batch_failed(run, task.arg, f"expand task failed: {describe(exc)}")
