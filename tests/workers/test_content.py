"""Content typing and perceptual hashing, without Dask."""

import io

import pytest
from PIL import Image

from triage.workers.answers import ext_mismatch, perceptual_hash


@pytest.mark.parametrize("name,mime,expected", [
    ("photo.jpg", "image/jpeg", False),
    ("photo.JPEG", "image/jpeg", False),
    ("notes.txt", "image/png", True),
    ("report.pdf", "application/zip", True),
    ("report.docx", "application/zip", False),
    ("data.csv", "text/plain", False),
    ("blob.bin", "text/plain", False),
    ("README", "text/plain", False),
    ("empty.jpg", "application/x-empty", False),
    ("file.unknownext", "image/png", False),
    ("stream.txt:hidden", "image/png", True),
    ("x.jpg", None, None),
])
def test_ext_mismatch(name, mime, expected):
    assert ext_mismatch(name, mime) is expected


def _png(w, h):
    buf = io.BytesIO()
    Image.new("L", (w, h), 0).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def test_phash_is_16_hex_chars():
    img = Image.new("RGB", (64, 48))
    for x in range(64):
        for y in range(48):
            img.putpixel((x, y), (x * 4, y * 5, (x * y) % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    ph, why = perceptual_hash(buf.getvalue(), 10_000_000)
    assert why is None and len(ph) == 16 and int(ph, 16) >= 0


def test_decompression_bomb_is_a_status_not_a_crash():
    data = _png(20000, 20000)  # 400 Mpixel of zeros compress to a few hundred KB
    assert len(data) < 2 << 20
    ph, why = perceptual_hash(data, 64_000_000)
    assert ph is None and "decompression bomb" in why


def test_undecodable_image_is_a_status():
    ph, why = perceptual_hash(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 64_000_000)
    assert ph is None and why.startswith("image not hashed")


def test_entropy_is_bits_per_byte_over_everything_read():
    import os

    import numpy as np

    from triage.workers.digest import Digest, entropy, finish, stream
    from triage.workers.refs import ContentOptions

    opts = ContentOptions(chunk_bytes=1000, magic_bytes=64, max_image_bytes=1 << 20, max_image_pixels=10**6)
    zeros = stream(Digest(5000, opts), lambda pos, n: b"\0" * n, 5000)
    assert finish(zeros, "z.bin")["entropy"] == 0.0
    two = stream(Digest(4000, opts), lambda pos, n: bytes((pos + i) % 2 for i in range(n)), 4000)
    assert finish(two, "t.bin")["entropy"] == 1.0  # two values, equally often
    data = os.urandom(1 << 16)
    rnd = finish(stream(Digest(len(data), opts), lambda pos, n: data[pos:pos + n], len(data)), "r.bin")
    assert 7.99 < rnd["entropy"] <= 8.0
    # streamed in chunks of 1000 bytes, the histogram is that of the whole content
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    assert rnd["entropy"] == entropy(counts)
    empty = finish(stream(Digest(0, opts), lambda pos, n: b"", 0), "e.bin")
    assert empty["entropy"] is None and empty["sha256"] is not None  # read, but no byte to count


def test_byte_counts_are_exact_on_both_sides_of_the_histogram_switch(monkeypatch):
    """Small reads are counted by numpy's bincount, big ones by Pillow's histogram (no 8-byte cast
    of every byte), and a buffer bigger than one Pillow row in pieces: all exactly bincount's."""
    import array
    import random

    import numpy as np

    from triage.workers import digest

    rng = random.Random(11)
    skewed = bytes(rng.choice(b"\x00\x00\x00\xff\x7f\x80A") for _ in range(70_000))
    for data in (b"", b"\x00", rng.randbytes(digest._PILLOW_HISTOGRAM_FROM - 1),
                 rng.randbytes(digest._PILLOW_HISTOGRAM_FROM), rng.randbytes(1 << 20), skewed,
                 b"\xff" * (4 << 20)):
        want = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
        for buf in (data, bytearray(data), memoryview(data)):
            got = digest.byte_counts(buf)
            assert got.dtype == np.int64 and got.shape == (256,)
            assert (got == want).all(), len(data)
    words = array.array("I", range(20_000))  # a buffer of 4-byte items: every one of its 80,000 bytes counts
    assert (digest.byte_counts(memoryview(words)) == np.bincount(np.frombuffer(words.tobytes(), dtype=np.uint8),
                                                                 minlength=256)).all()
    monkeypatch.setattr(digest, "_PILLOW_HISTOGRAM_MAX", 50_000)  # 70,000 bytes: two rows
    want = np.bincount(np.frombuffer(skewed, dtype=np.uint8), minlength=256)
    assert (digest.byte_counts(skewed) == want).all()


def test_an_unreadable_file_has_no_entropy():
    from triage.workers.digest import Digest, finish, stream
    from triage.workers.refs import ContentOptions

    def broken(pos: int, n: int) -> bytes:
        raise OSError("read error")

    opts = ContentOptions(chunk_bytes=1000, magic_bytes=64, max_image_bytes=1 << 20, max_image_pixels=10**6)
    row = finish(stream(Digest(5000, opts), broken, 5000), "x.bin")
    assert row["status"].startswith("unreadable") and row["entropy"] is None and row["md5"] is None
