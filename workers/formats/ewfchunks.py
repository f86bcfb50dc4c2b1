"""E01 (EWF1, EnCase 2-7) chunks read straight from the segment files, decompressed by zlib(-ng).

Measured on this machine (256 MiB device, ewfacquire ``-c fast``): libewf-python
20260901 spends ~4.2 CPU-seconds inflating it, whatever the read size (32 KiB to
16 MiB), about 60 MB/s; the same chunks through ``zlib.decompress`` take well
under a second. The wheel's libewf inflates with its own code, not zlib's. So the
media stream of an E01 is read here from the format itself, and libewf stays the
reference: it opens the image first (the segment set and its stored hashes are
checked by it), and any chunk this reader cannot vouch for (a table it does not
understand, a chunk that does not inflate to the chunk size, an uncompressed
chunk whose Adler-32 disagrees) is read through libewf instead, so the bytes are
always what libewf gives.

Layout (libewf's "Expert Witness Compression Format" documentation): a 13-byte
file header, then sections, each a 76-byte descriptor (type, next offset, size,
Adler-32). ``volume``/``disk`` gives the chunk count and size; each ``sectors``
section holds chunks, and the ``table`` that follows lists them: a base offset
and one 32-bit entry per chunk, bit 31 = compressed, the rest the offset from the
base. A chunk ends where the next one starts, the last where its sectors section
ends. Anything else (EWF2/Ex01, SMART, offsets past 2 GiB that wrap) gives no map.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

try:  # zlib-ng: the same zlib streams and errors, inflated ~2x faster than the system zlib (measured here:
    # 0.20 vs 0.41 CPU-s for a 256 MiB image's chunks); an E01's media is inflated once per read of it
    from zlib_ng import zlib_ng as _inflater
except ImportError:  # pragma: no cover - a checkout whose environment predates the dependency
    _inflater = zlib

log = logging.getLogger(__name__)

EVF1 = b"EVF\x09\x0d\x0a\xff\x00"
DESCRIPTOR = 76
#: decompressed chunks kept per image for TSK's small, repeated reads
CACHE_CHUNKS = 64
#: threads inflating the chunks of one big read (the image hash decodes 32 MiB = 1024 chunks at a time)
INFLATE_THREADS = min(4, os.cpu_count() or 1)
#: chunks per thread's share at least (1 MiB of media): fewer and a read is inflated on the calling thread
SHARE_CHUNKS = 32
#: compressed chunks this small (an all-zero chunk is ~100 bytes) are inflated once per distinct stream and
#: then looked up: inflating is a pure function of the stream, and a disk's free space is the same few
#: streams thousands of times (256 MiB bench device: 3,640 of its 8,192 chunks are one zero stream, inflated
#: in 0.105 CPU-s, looked up in 0.002)
MEMO_STORED = 512
#: distinct small streams remembered per image (each at most one chunk of output)
MEMO_ENTRIES = 32
#: stored bytes fetched by one pread at most: each reading thread's reused buffer (~30-60 chunks a call)
SPAN_MAX = 1 << 20


@dataclass(frozen=True)
class ChunkMap:
    chunk_size: int
    media_size: int
    files: tuple[str, ...]
    entries: tuple[tuple[int, int, int, bool], ...]  # per chunk: (file index, offset, stored size, compressed)


def _sections(fd: int, size: int):
    off = 13
    seen = 0
    while off + DESCRIPTOR <= size and seen < 100_000:
        d = os.pread(fd, DESCRIPTOR, off)
        if len(d) < DESCRIPTOR or zlib.adler32(d[:72]) != struct.unpack_from("<I", d, 72)[0]:
            raise ValueError(f"section descriptor at {off} damaged")
        kind = d[:16].rstrip(b"\0").decode("ascii", "replace")
        nxt, length = struct.unpack_from("<QQ", d, 16)
        yield kind, off, length
        if kind in ("done", "next") or nxt <= off:
            return
        off, seen = nxt, seen + 1


def chunk_map(segments: tuple[str, ...]) -> ChunkMap | None:
    """The chunk table of an EWF1 segment set, or None when it is not one this reader understands."""
    entries: list[tuple[int, int, int, bool]] = []
    chunk_size = media_size = chunks = None
    try:
        for i, path in enumerate(segments):
            fd = os.open(path, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                if os.pread(fd, 8, 0) != EVF1:
                    return None
                sectors: tuple[int, int] | None = None
                for kind, off, length in _sections(fd, size):
                    if kind in ("volume", "disk") and chunk_size is None:
                        v = os.pread(fd, 24, off + DESCRIPTOR)
                        chunks, per_chunk, sector, n_sectors = struct.unpack_from("<4xIIIQ", v, 0)
                        chunk_size, media_size = per_chunk * sector, n_sectors * sector
                    elif kind == "sectors":
                        sectors = (off, off + length)
                    elif kind == "table":
                        if sectors is None:
                            return None  # chunks inside the table (EWF-S01 / very old EnCase)
                        entries += _table(fd, off, sectors, i)
                        sectors = None
            finally:
                os.close(fd)
    except (OSError, ValueError, struct.error) as exc:
        log.info("EWF chunk table not read (%s): reading through libewf", exc)
        return None
    if not chunk_size or chunks != len(entries) or media_size is None or media_size > chunks * chunk_size:
        return None
    return ChunkMap(chunk_size, media_size, tuple(segments), tuple(entries))


def _table(fd: int, off: int, sectors: tuple[int, int], file_index: int) -> list[tuple[int, int, int, bool]]:
    head = os.pread(fd, 24, off + DESCRIPTOR)
    n, base = struct.unpack_from("<I4xQ", head, 0)
    if zlib.adler32(head[:20]) != struct.unpack_from("<I", head, 20)[0] or n > 1 << 20:
        raise ValueError("table header damaged")
    raw = struct.unpack(f"<{n}I", os.pread(fd, 4 * n, off + DESCRIPTOR + 24))
    starts = [base + (e & 0x7FFFFFFF) for e in raw]
    ends = starts[1:] + [sectors[1]]
    out = []
    for s, e, r in zip(starts, ends, raw):
        if not sectors[0] < s < e <= sectors[1]:
            raise ValueError("table offsets out of order (wrapped past 2 GiB?)")
        out.append((file_index, s, e - s, bool(r & 0x80000000)))
    return out


class EwfChunkMedia:
    """The media of an EWF1 image as :class:`Media`, with ``fallback`` (libewf) for chunks it cannot vouch for."""

    def __init__(self, cmap: ChunkMap, fallback: Callable[[], object]) -> None:
        self.map = cmap
        self.size = cmap.media_size
        self._fds = [os.open(p, os.O_RDONLY) for p in cmap.files]
        self._fallback_open = fallback
        self._fallback = None
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._memo: dict[bytes, bytes] = {}
        self._scratch = threading.local()
        self._lock = threading.Lock()
        self._threads: ThreadPoolExecutor | None = None

    def _chunk(self, n: int) -> bytes:
        with self._lock:
            hit = self._cache.get(n)
            if hit is not None:
                self._cache.move_to_end(n)
                return hit
        data = self._decode(n)
        with self._lock:
            self._cache[n] = data
            while len(self._cache) > CACHE_CHUNKS:
                self._cache.popitem(last=False)
        return data

    def _decode(self, n: int) -> bytes:
        f, off, stored, _ = self.map.entries[n]
        return bytes(self._inflate(n, os.pread(self._fds[f], stored, off)))

    def _inflate(self, n: int, raw: bytes | memoryview) -> bytes | memoryview:
        """Chunk ``n`` from its stored bytes ``raw``; libewf's answer when they do not decode as they should.

        A stored (uncompressed) chunk comes back as a view of ``raw`` when ``raw`` is one: a caller that
        keeps it (the cache) copies it, one that joins it into a read copies it there anyway."""
        compressed = self.map.entries[n][3]
        want = min(self.map.chunk_size, self.size - n * self.map.chunk_size)
        try:
            if compressed and len(raw) <= MEMO_STORED:
                key = bytes(raw)
                data = self._memo.get(key)
                if data is None:
                    data = _inflater.decompress(key)
                    if len(self._memo) < MEMO_ENTRIES:
                        self._memo[key] = data
            elif compressed:
                data = _inflater.decompress(raw)
            else:
                data, check = raw[:-4], raw[-4:]
                if _inflater.adler32(data).to_bytes(4, "little") != check:
                    raise zlib.error("Adler-32 mismatch")
            if len(data) >= want:
                return data if len(data) == want else data[:want]
        except (zlib.error, _inflater.error):
            pass
        return self._slow(n * self.map.chunk_size, want)  # damaged or unusual: libewf decides what it holds

    def _decode_run(self, first: int, last: int, emit: Callable[[int, bytes | memoryview], None]) -> None:
        """Chunks ``first``..``last`` (inclusive) handed to ``emit(n, data)`` in order. The stored bytes of each
        stretch that lies back to back in one segment file are read with one ``preadv`` into this thread's
        reused buffer (no allocation per read: a dask worker runs with ``MALLOC_TRIM_THRESHOLD_`` set, so every
        allocation over 128 KiB is a fresh mmap whose pages fault in); ``data`` may be a view of that buffer,
        valid only during the call."""
        entries = self.map.entries
        scratch = getattr(self._scratch, "buf", None)
        if scratch is None:
            scratch = self._scratch.buf = memoryview(bytearray(SPAN_MAX))
        n = first
        while n <= last:
            f, start, stored, _ = entries[n]
            end, m = start + stored, n + 1
            while m <= last and entries[m][0] == f and entries[m][1] == end and entries[m][2] + end - start <= SPAN_MAX:
                end += entries[m][2]
                m += 1
            if end - start > SPAN_MAX:  # one chunk larger than the buffer (not written by any EnCase tool)
                emit(n, self._decode(n))
                n += 1
                continue
            got = os.preadv(self._fds[f], [scratch[:end - start]], start)
            view = scratch[:got]  # a short read leaves the tail chunks short: they fail to decode, libewf reads them
            pos = 0
            for k in range(n, m):
                size = entries[k][2]
                emit(k, self._inflate(k, view[pos:pos + size]))
                pos += size
            n = m

    def _spans(self, first: int, last: int, emit: Callable[[int, bytes | memoryview], None]) -> None:
        """``_decode_run`` over ``first``..``last``, shared out in contiguous stretches over a few threads when
        the read is big (zlib and pread release the GIL): a few pool calls per read, not one per 32 KiB chunk."""
        count = last - first + 1
        shares = min(INFLATE_THREADS, count // SHARE_CHUNKS)
        if shares <= 1:
            self._decode_run(first, last, emit)
            return
        step = -(-count // shares)
        spans = [(a, min(a + step - 1, last)) for a in range(first, last + 1, step)]
        list(self._pool().map(lambda s: self._decode_run(s[0], s[1], emit), spans))

    def _slow(self, offset: int, size: int) -> bytes:
        with self._lock:
            if self._fallback is None:
                self._fallback = self._fallback_open()
            media = self._fallback
        return media.read(offset, size)  # type: ignore[attr-defined]

    def read(self, offset: int, size: int) -> bytes:
        size = max(0, min(size, self.size - offset))
        if size == 0:
            return b""
        cs = self.map.chunk_size
        first, last = offset // cs, (offset + size - 1) // cs
        start = offset - first * cs
        if first == last:
            return self._chunk(first)[start:start + size]
        # the two edge chunks go through the cache (a neighbouring read, TSK's next block, often shares them);
        # the inner ones are wholly consumed by this read and are inflated straight from their stored span
        middle: dict[int, bytes] = {}
        if last - first > 1:
            self._spans(first + 1, last - 1, lambda k, d: middle.__setitem__(k, bytes(d)))
        end = offset + size - last * cs
        # memoryviews of the edges: the one copy is the join's, whether or not the read is chunk-aligned
        return b"".join([memoryview(self._chunk(first))[start:], *(middle[k] for k in range(first + 1, last)),
                         memoryview(self._chunk(last))[:end]])

    def readinto(self, offset: int, buf: memoryview) -> int:
        """Media bytes from ``offset`` straight into ``buf`` (the image hash's reused ring buffers), every chunk
        decoded into place: no allocation per block. Returns the bytes written."""
        size = max(0, min(len(buf), self.size - offset))
        if size == 0:
            return 0
        cs = self.map.chunk_size
        first, last = offset // cs, (offset + size - 1) // cs
        lead = offset - first * cs

        def put(k: int, data: bytes | memoryview) -> None:
            at = (k - first) * cs - lead  # where chunk k's first byte goes (negative: before the buffer)
            lo, hi = max(0, -at), min(len(data), size - at)
            buf[at + lo:at + hi] = data[lo:hi]

        self._spans(first, last, put)
        return size

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._threads is None:  # zlib and pread release the GIL
                self._threads = ThreadPoolExecutor(INFLATE_THREADS, thread_name_prefix="ewf-inflate")
            return self._threads

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        if self._fallback is None:
            self._fallback = self._fallback_open()
        self._fallback.close()  # type: ignore[attr-defined]  (libewf's handle, opened with the image)
