"""The E01 fast path's batched reads: a stretch of chunks fetched with one pread and inflated in contiguous
shares on a few threads, the edge chunks kept in a bounded cache, the image hash read in small blocks.
Every read must still give the raw image's bytes (and libewf's where a chunk is damaged). ewfacquire writes
the images from a raw file of mixed content (stored and compressed chunks alike); the raw file is the oracle."""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from triage.workers.formats import HandleMedia
from triage.workers.formats import ewfchunks
from triage.workers.formats.ewf import open_ewf
from triage.workers.formats.ewfchunks import CACHE_CHUNKS, EwfChunkMedia, chunk_map
from triage.workers.image import identify
from triage.workers.media import hash_media

pytestmark = pytest.mark.skipif(shutil.which("ewfacquire") is None, reason="ewf-tools not installed")

CHUNKS = 300  # of 32 KiB: enough for reads shared out over every inflate thread


def _raw(path: Path) -> bytes:
    """Random chunks (stored), text and zeros (compressed), in runs that do not line up with chunk edges."""
    rnd = random.Random(1729)
    out = bytearray()
    while len(out) < CHUNKS * 32768:
        kind, n = rnd.choice(["random", "text", "zeros"]), rnd.randrange(1000, 200_000)
        out += (rnd.randbytes(n) if kind == "random" else
                (b"evidence %d " % rnd.randrange(10**6)) * (n // 16) if kind == "text" else bytes(n))
    data = bytes(out[:CHUNKS * 32768 - 1536])  # the last chunk is a short one
    path.write_bytes(data)
    return data


def _acquire(raw: Path, work: Path, segment: str = "2GiB") -> Path:
    subprocess.run(["ewfacquire", "-u", "-q", "-t", str(work / "img"), "-f", "encase6", "-c", "fast",
                    "-S", segment, str(raw)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return work / "img.E01"


@pytest.fixture()
def e01(tmp_path):
    raw = tmp_path / "dev.raw"
    data = _raw(raw)
    path = _acquire(raw, tmp_path)
    ref = identify(path)
    cmap = chunk_map(tuple(ref.segments))
    assert cmap is not None and cmap.chunk_size == 32768
    kinds = {c for *_, c in cmap.entries}
    assert kinds == {True, False}  # both chunk kinds are exercised
    return ref, cmap, data


def test_big_and_unaligned_reads_give_the_raw_bytes(e01, monkeypatch):
    ref, cmap, data = e01
    monkeypatch.setattr(ewfchunks, "SPAN_MAX", 100_000)  # stretches cut into several preads, mid-read
    media = EwfChunkMedia(cmap, lambda: HandleMedia(open_ewf(ref)))
    try:
        assert media.read(0, ref.size) == data
        rnd = random.Random(3)
        cs = cmap.chunk_size
        for n in [cs - 1, 2 * cs + 1, 40 * cs, 65 * cs + 7, 130 * cs + 511, 299 * cs]:
            for _ in range(6):
                o = rnd.randrange(ref.size)
                assert media.read(o, n) == data[o:o + n], (o, n)
        assert media.read(ref.size - 5, 100) == data[-5:]
        assert len(media._cache) <= CACHE_CHUNKS  # the cache holds edge chunks only, bounded
    finally:
        media.close()


def test_readinto_decodes_into_the_callers_buffer_as_read_does(e01, monkeypatch):
    ref, cmap, data = e01
    monkeypatch.setattr(ewfchunks, "SPAN_MAX", 100_000)  # the reused per-thread buffer refilled many times
    media = EwfChunkMedia(cmap, lambda: HandleMedia(open_ewf(ref)))
    try:
        rnd = random.Random(5)
        cs = cmap.chunk_size
        for n in [1, cs, 3 * cs + 17, 70 * cs, 200 * cs + 3]:
            buf = bytearray(b"\xaa" * n)
            for _ in range(5):
                o = rnd.randrange(ref.size)
                got = media.readinto(o, memoryview(buf))
                want = data[o:o + n]
                assert got == len(want) and bytes(buf[:got]) == want, (o, n)
        assert media.readinto(ref.size, memoryview(bytearray(10))) == 0
    finally:
        media.close()


def test_a_damaged_chunk_inside_a_shared_read_reads_as_libewf_reads_it(e01):
    ref, cmap, _ = e01
    n = next(i for i in range(150, CHUNKS) if cmap.entries[i][3])  # a compressed chunk in a middle share
    _, off, stored, _ = cmap.entries[n]
    with open(ref.segments[0], "r+b") as fh:
        fh.seek(off + stored // 2)
        fh.write(b"\xde\xad\xbe\xef" * 4)
    lib = HandleMedia(open_ewf(ref))
    fast = EwfChunkMedia(cmap, lambda: HandleMedia(open_ewf(ref)))
    try:
        assert fast.read(0, ref.size) == lib.read(0, ref.size)
        assert fast.read(5 * 32768 + 9, 250 * 32768) == lib.read(5 * 32768 + 9, 250 * 32768)
        buf = bytearray(ref.size)
        assert fast.readinto(0, memoryview(buf)) == ref.size and buf == lib.read(0, ref.size)
    finally:
        fast.close()
        lib.close()


def test_a_damaged_zero_chunk_among_many_alike_reads_as_libewf_reads_it(e01):
    ref, cmap, data = e01
    zero = bytes(cmap.chunk_size)
    small = [i for i, (_, _, stored, comp) in enumerate(cmap.entries)
             if comp and stored <= ewfchunks.MEMO_STORED and data[i * cmap.chunk_size:(i + 1) * cmap.chunk_size] == zero]
    assert len(small) > 10  # the same stream many times over: remembered after the first
    n = small[len(small) // 2]
    _, off, stored, _ = cmap.entries[n]
    with open(ref.segments[0], "r+b") as fh:
        fh.seek(off + stored // 2)
        fh.write(b"\xff\x00\xff")
    lib = HandleMedia(open_ewf(ref))
    fast = EwfChunkMedia(cmap, lambda: HandleMedia(open_ewf(ref)))
    try:
        assert fast.read(0, ref.size) == lib.read(0, ref.size)  # the damaged stream is not taken for the zeros
        for i in small:
            if i != n:
                assert fast.read(i * cmap.chunk_size, cmap.chunk_size) == zero
        assert 0 < len(fast._memo) <= ewfchunks.MEMO_ENTRIES
    finally:
        fast.close()
        lib.close()


def test_the_image_hash_of_a_multi_segment_e01_is_the_raw_hash_and_its_stored_md5_checks(tmp_path):
    raw = tmp_path / "dev.raw"
    data = _raw(raw)
    ref = identify(_acquire(raw, tmp_path, segment="1MiB"))
    assert len(ref.segments) > 3  # chunk stretches end at every segment's edge
    digest = hash_media(ref, block=3 * 32768 + 512)  # blocks not chunk-aligned
    assert (digest.md5, digest.sha256) == (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())
    assert digest.ewf_verified is True and digest.error is None


def test_chunks_are_inflated_by_zlib_ng():
    import zlib

    assert ewfchunks._inflater is not zlib  # the ~2x faster inflate is installed and used (pyproject)
