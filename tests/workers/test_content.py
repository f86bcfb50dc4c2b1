"""Content typing and perceptual hashing, without Dask."""

import io

import pytest
from PIL import Image

from triage.workers.content import ext_mismatch, perceptual_hash


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
