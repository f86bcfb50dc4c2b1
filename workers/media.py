"""The whole-image hash (md5 + sha256 of the media stream) and, for E01, its stored-hash check.

One sequential task per image: a hash cannot be split, so the dispatcher gives
it the highest priority and it runs beside the walk and content tasks.

Why it is threaded: md5 and sha256 are each one sequential chain, but they are
independent of each other and of the reading, and hashlib releases the GIL while
it hashes a large buffer. So the image is read in large sequential blocks
(``BLOCK`` bytes, a few system calls per block) into a small ring of buffers,
and each block is handed to one md5 thread and one sha256 thread; a buffer is
refilled only once both threads are done with it. The chain then costs the
slower of the two hashes (md5 on CPUs with SHA extensions) instead of their
sum plus the reads, and memory stays at ``RING`` blocks whatever the image size.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from triage.rules.errors import ImageError
from triage.workers.formats import FORMATS, ImageFormat
from triage.workers.image import _oneline, iter_media, open_ewf
from triage.workers.pathmap import localize
from triage.workers.refs import ImageRef

log = logging.getLogger(__name__)

#: bytes per read: large enough that system calls and thread hand-offs cost nothing next to the
#: hashing, small enough that RING of them stay far below a worker's memory budget
BLOCK = 32 << 20
#: blocks in flight: one being read while the hash threads work on the previous one
RING = 2
#: bytes per read of a decoded stream the library hands back as a new bytes object (VMDK, VHD/VHDX, QCOW):
#: a dask worker runs with MALLOC_TRIM_THRESHOLD_ set, which pins glibc's mmap threshold at 128 KiB, so
#: every larger read is a fresh mapping whose pages fault in (measured in a worker, 256 MiB device: 4 MiB
#: reads 0.22-0.28 s of system time, 96 KiB reads 0.08-0.12 at +0.07 s user; the hash 30-40% sooner)
DECODED_BLOCK = 96 << 10


@dataclass(frozen=True)
class MediaDigest:
    size: int
    md5: str
    sha256: str
    ewf_stored_md5: str | None = None
    ewf_stored_sha1: str | None = None
    ewf_verified: bool | None = None  # None: not an E01, or it stores no MD5
    error: str | None = None          # the stream could not be read to its end


def _raw_blocks(ref: ImageRef, ring: list[bytearray], in_use: deque) -> Iterator[memoryview]:
    """The segments' bytes in order, each block read into the next ring buffer once it is free.

    ``in_use`` holds, per yielded block, the futures hashing it; the oldest are
    waited for before its buffer is overwritten.
    """
    slot = 0
    for seg in ref.segments:
        with open(seg, "rb", buffering=0) as f:
            while True:
                if len(in_use) >= len(ring):
                    for fut in in_use.popleft():
                        fut.result()
                view = memoryview(ring[slot])
                n = f.readinto(view)
                if not n:
                    break
                slot = (slot + 1) % len(ring)
                yield view[:n]


def _ring_blocks(media, ring: list[bytearray], in_use: deque, ref: ImageRef) -> Iterator[memoryview]:
    """A decoded stream whose :class:`Media` can ``readinto`` (E01): read into the ring like raw files are."""
    slot = 0
    for offset in range(0, media.size, len(ring[0])):
        if len(in_use) >= len(ring):
            for fut in in_use.popleft():
                fut.result()
        view = memoryview(ring[slot])
        n = media.readinto(offset, view)
        if not n:
            raise ImageError(f"{ref.path}: media stream ends early at byte {offset}")
        slot = (slot + 1) % len(ring)
        yield view[:n]


def _blocks(ref: ImageRef, in_use: deque, block: int) -> Iterator[bytes | memoryview]:
    fmt = FORMATS.get(ref.format)
    if not fmt.MEDIA_IS_FILES:
        if type(fmt).iter_media is not ImageFormat.iter_media:  # a format that streams itself (logical sources)
            for data in iter_media(ref, chunk=min(block, DECODED_BLOCK)):
                while len(in_use) >= RING:
                    for fut in in_use.popleft():
                        fut.result()
                yield data
            return
        media = fmt.open_media(localize(ref))  # this worker's path, its copy checked (triage.workers.pathmap)
        try:
            if hasattr(media, "readinto"):  # E01: decoded into reused buffers, no allocation per block
                yield from _ring_blocks(media, [bytearray(block) for _ in range(RING)], in_use, ref)
                return
            # VMDK, VHD/VHDX, QCOW: the library returns a new bytes object per read, so nothing is reused
            # and no ring is needed, but at most RING blocks are kept in flight
            step = min(block, DECODED_BLOCK)
            for offset in range(0, media.size, step):
                data = media.read(offset, step)
                if not data:
                    raise ImageError(f"{ref.path}: media stream ends early at byte {offset}")
                while len(in_use) >= RING:
                    for fut in in_use.popleft():
                        fut.result()
                yield data
        finally:
            media.close()
        return
    # raw and split raw: the files are the media, read straight into a ring of reused buffers,
    # at this worker's path for them (triage.workers.pathmap), its copy checked first
    yield from _raw_blocks(localize(ref), [bytearray(block) for _ in range(RING)], in_use)


def _hash_stream(ref: ImageRef, block: int) -> tuple[int, str, str, str | None]:
    """(bytes read, md5, sha256, error) with md5 and sha256 each on its own thread."""
    md5 = hashlib.md5(usedforsecurity=False)  # identification and the E01 check, not security
    sha256 = hashlib.sha256()
    in_use: deque[tuple[Future, Future]] = deque()
    size = 0
    error = None
    # one single-thread pool per hash keeps each hash's updates in stream order
    with ThreadPoolExecutor(1, "media-md5") as p_md5, ThreadPoolExecutor(1, "media-sha256") as p_sha:
        try:
            for data in _blocks(ref, in_use, block):
                in_use.append((p_md5.submit(md5.update, data), p_sha.submit(sha256.update, data)))
                size += len(data)
        except (OSError, RuntimeError, ImageError) as exc:
            error = f"media stream unreadable at byte {size}: {_oneline(exc)}"
        finally:
            for futs in in_use:
                for fut in futs:
                    fut.result()
    return size, md5.hexdigest(), sha256.hexdigest(), error


def hash_media(ref: ImageRef, block: int | None = None) -> MediaDigest:
    """md5 and sha256 of the media stream in one sequential read; an E01's stored MD5 checked against it."""
    size, md5, sha256, error = _hash_stream(ref, block or BLOCK)
    if size != ref.size and error is None:
        error = f"media stream is {size} bytes, expected {ref.size}"
    stored_md5 = stored_sha1 = verified = None
    if ref.format == "ewf":
        handle = open_ewf(ref)
        try:
            stored = {k.upper(): v for k, v in (handle.get_hash_values() or {}).items()}
        finally:
            handle.close()
        stored_md5 = (stored.get("MD5") or "").lower() or None
        stored_sha1 = (stored.get("SHA1") or "").lower() or None
        if stored_md5:
            verified = stored_md5 == md5 and error is None
    log.debug("media %s: %d bytes hashed, error %s", ref.path, size, error)
    return MediaDigest(size, md5, sha256, stored_md5, stored_sha1, verified, error)
