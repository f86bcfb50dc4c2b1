"""E01 chunks inflated by zlib (libewf-python's own inflate is the slow part) must give libewf's bytes exactly:
compressed and stored chunks, one segment or many, random reads across chunk and segment edges, and a damaged
chunk (then libewf decides what it holds). ewfacquire writes the images; libewf and the raw file are the oracles."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from triage.workers.formats import HandleMedia
from triage.workers.formats.ewf import open_ewf
from triage.workers.formats.ewfchunks import EwfChunkMedia, chunk_map
from triage.workers.image import identify
from triage_test_fixtures.shared import CORPUS

pytestmark = pytest.mark.skipif(shutil.which("ewfacquire") is None, reason="ewf-tools not installed")


def _acquire(raw: Path, work: Path, compression: str, segment: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ewfacquire", "-u", "-q", "-t", str(work / "img"), "-f", "encase6", "-c", compression,
                    "-S", segment, str(raw)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return work / "img.E01"


@pytest.mark.parametrize("compression,segment", [("fast", "2GiB"), ("none", "1MiB"), ("best", "1MiB")])
def test_chunks_read_as_libewf_and_the_raw_image(mbr_image, tmp_path, compression, segment):
    e01 = _acquire(mbr_image.raw, tmp_path, compression, segment)
    ref = identify(e01)
    cmap = chunk_map(tuple(ref.segments))
    assert cmap is not None and cmap.media_size == ref.size
    assert (len(ref.segments) > 1) == (segment == "1MiB")
    assert any(c for *_, c in cmap.entries) == (compression != "none")
    raw = mbr_image.raw.read_bytes()
    media = EwfChunkMedia(cmap, lambda: HandleMedia(open_ewf(ref)))
    try:
        assert media.read(0, ref.size) == raw
        rnd = random.Random(7)
        for _ in range(300):
            o = rnd.randrange(ref.size)
            n = rnd.choice([1, 511, 4096, cmap.chunk_size + 3, 5 * cmap.chunk_size])
            assert media.read(o, n) == raw[o:o + n], (o, n)
    finally:
        media.close()


def test_a_damaged_chunk_reads_as_libewf_reads_it(mbr_image, tmp_path):
    e01 = _acquire(mbr_image.raw, tmp_path, "fast", "2GiB")
    ref = identify(e01)
    cmap = chunk_map(tuple(ref.segments))
    n = 3
    _, off, stored, compressed = cmap.entries[n]
    assert compressed
    with open(e01, "r+b") as fh:  # garble the middle of one compressed chunk
        fh.seek(off + stored // 2)
        fh.write(b"\xde\xad\xbe\xef" * 4)
    lib = HandleMedia(open_ewf(ref))
    fast = EwfChunkMedia(cmap, lambda: HandleMedia(open_ewf(ref)))
    try:
        span = slice((n - 1) * cmap.chunk_size, (n + 2) * cmap.chunk_size)
        assert fast.read(span.start, span.stop - span.start) == lib.read(span.start, span.stop - span.start)
    finally:
        fast.close()
        lib.close()


def test_not_an_ewf1_set_gives_no_map(tmp_path):
    junk = tmp_path / "x.E01"
    junk.write_bytes(b"EVF2\r\n\x81\x00" + bytes(4096))
    assert chunk_map((str(junk),)) is None




@pytest.mark.parametrize("name", ["sleuthkit/imageformat_mmls_1.E01", "dfvfs/ext2.split.E01",
                                  "velociraptor/partition_image.E01"])
def test_third_party_e01s_read_as_libewf_reads_them(name):
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{path} not in the corpus")
    ref = identify(path)
    cmap = chunk_map(tuple(ref.segments))
    assert cmap is not None  # EnCase-, dfVFS- and Velociraptor-made sets are all read by the fast path
    fast, lib = EwfChunkMedia(cmap, lambda: HandleMedia(open_ewf(ref))), HandleMedia(open_ewf(ref))
    try:
        assert fast.read(0, ref.size) == lib.read(0, ref.size)
    finally:
        fast.close()
        lib.close()
