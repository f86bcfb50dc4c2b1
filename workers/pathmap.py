"""Evidence seen from another machine: map the dispatcher's paths to this worker's, and prove the copy is the same.

Why on the worker: each machine mounts the evidence share where its operator put it
(the dispatcher's ``/cases/OP-ROSE/laptop.E01`` is ``/mnt/evidence/OP-ROSE/laptop.E01``
on a worker), so the mapping is that worker's own configuration
(``triage.cluster.path-map``, read from the worker's dask config or
``DASK_TRIAGE__CLUSTER__PATH_MAP``), not something the job carries. The longest
matching prefix wins, on whole path components.

Why a fingerprint: a worker reading a stale, truncated or different copy would
produce a confident, wrong table. Before a worker opens an image it checks that it
sees every segment, that their sizes are the ones the dispatcher saw, and that the
first block hashes the same (:class:`Fingerprint`, computed by the control plane
from its own copy and handed to every worker, present and future, as a worker
plugin: :class:`EvidencePlugin`). Without a published fingerprint the size check
against the description still runs. A mismatch is an :class:`ImageError` naming the
worker and the path: that task fails with it, never a wrong result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import stat
from pathlib import PurePosixPath

from triage.rules.errors import ImageError
from triage.workers.refs import ImageRef

log = logging.getLogger(__name__)

#: bytes of the first segment hashed for the fingerprint: boot sector, partition table, EWF header
HEAD_BYTES = 64 * 1024


def path_map() -> dict[str, str]:
    """This process's configured mapping (empty when none)."""
    import dask.config

    value = dask.config.get("triage.cluster.path-map", None)
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ImageError(f"triage.cluster.path-map: expected a mapping {{dispatcher prefix: worker prefix}}, "
                         f"got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def map_path(path: str, mapping: dict[str, str] | None = None) -> str:
    """``path`` as this worker sees it: the longest matching prefix (whole components) replaced."""
    mapping = path_map() if mapping is None else mapping
    best = ""
    parts = PurePosixPath(path).parts
    for prefix in mapping:
        pp = PurePosixPath(prefix).parts
        if parts[: len(pp)] == pp and len(prefix) > len(best):
            best = prefix
    if not best:
        return path
    rest = parts[len(PurePosixPath(best).parts):]
    return str(PurePosixPath(mapping[best], *rest))


def worker_label() -> str:
    """How an error names this worker: its dask name and address, or the host outside a worker."""
    try:
        from distributed import get_worker

        w = get_worker()
        return f"worker {w.name} ({w.address})" if str(w.name) != w.address else f"worker {w.address}"
    except (ImportError, ValueError):
        return f"host {socket.gethostname()}"


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """What the dispatcher saw of an image: each segment's size and the first block's SHA-256."""

    path: str
    sizes: tuple[int, ...]
    head_sha256: str


def head_sha256(path: str) -> str:
    if os.path.isdir(path):  # a folder source: the names at its top stand for its first block
        return hashlib.sha256(b"\0".join(sorted(os.fsencode(n) for n in os.listdir(path)))).hexdigest()
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(HEAD_BYTES)).hexdigest()


def _size(path: str) -> int:
    """A segment's size; 0 for a folder source (a directory's own size differs between filesystems)."""
    st = os.stat(path)
    return 0 if stat.S_ISDIR(st.st_mode) else st.st_size


def fingerprint(ref: ImageRef) -> Fingerprint:
    """The control plane's fingerprint of ``ref``, from its own copy (read-only, 64 KiB)."""
    return Fingerprint(ref.path, tuple(_size(s) for s in ref.segments), head_sha256(ref.segments[0]))


def plugin_name(path: str) -> str:
    return "triage-evidence-" + hashlib.sha256(path.encode()).hexdigest()[:16]


def published(path: str) -> Fingerprint | None:
    try:
        from distributed import get_worker

        from triage.workers.evidenceplugin import EvidencePlugin

        plugin = get_worker().plugins.get(plugin_name(path))
    except (ImportError, ValueError):
        return None
    return plugin.fp if isinstance(plugin, EvidencePlugin) else None


def _media_is_files(ref: ImageRef) -> bool:
    """Whether the image's files are its media (raw, split raw), so their sizes must add up to it."""
    from triage.workers.formats import FORMATS

    return bool(FORMATS.get(ref.format).MEDIA_IS_FILES)


def localize(ref: ImageRef) -> ImageRef:
    """``ref`` with this worker's paths, after checking the copy here is the dispatcher's; else ImageError."""
    mapping = path_map()
    segments = tuple(map_path(s, mapping) for s in ref.segments)
    where = worker_label()
    how = f" (mapped from {ref.path} by triage.cluster.path-map)" if segments[0] != ref.segments[0] else ""
    sizes = []
    for seg in segments:
        try:
            sizes.append(_size(seg))
        except OSError as exc:
            raise ImageError(f"{where}: {seg}: cannot see this image segment{how}: "
                             f"{exc.strerror or type(exc).__name__}") from exc
    fp = published(ref.path)
    if fp is not None:
        if tuple(sizes) != fp.sizes:
            raise ImageError(f"{where}: {segments[0]}: copy differs from the dispatcher's: segment sizes "
                             f"{sizes} != {list(fp.sizes)}{how}")
        if head_sha256(segments[0]) != fp.head_sha256:
            raise ImageError(f"{where}: {segments[0]}: copy differs from the dispatcher's: first "
                             f"{HEAD_BYTES // 1024} KiB hash differently{how}")
    elif _media_is_files(ref) and sum(sizes) != ref.size:  # raw and split raw: the media is the files
        raise ImageError(f"{where}: {segments[0]}: copy differs from the dispatcher's: {sum(sizes)} bytes, "
                         f"expected {ref.size}{how}")
    if not how:
        return ref
    return dataclasses.replace(ref, path=map_path(ref.path, mapping), segments=segments)
