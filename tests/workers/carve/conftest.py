"""Real objects built with the real tools (Pillow, zipfile, sqlite3), and planting helpers.

Every sample is made at run time by the library that owns the format, so the
carvers are checked against other code's idea of a valid file, never their own.
Ground truth for a planted buffer is where we put each object and its sha256.
"""

from __future__ import annotations

import hashlib
import io
import random
import sqlite3
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from PIL import Image

from triage_test_fixtures.carving import _exif_with_thumbnail, _save, pdf_with_xref

from triage.workers.carve import BytesReader, scan

#: (offset, length, sha256, type) of one object, as planted or as carved
Truth = tuple[int, int, str, str]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _image(size: tuple[int, int] = (96, 64), seed: int = 0) -> Image.Image:
    """A noisy RGB picture, so encoders produce non-trivial entropy-coded data."""
    rnd = random.Random(seed)
    im = Image.new("RGB", size)
    im.putdata([(rnd.randrange(256), (x * 7) % 256, (x * 3) % 256) for x in range(size[0] * size[1])])
    return im


def _handmade_pdf(update: bool = False) -> bytes:
    """A minimal valid PDF with a correct xref table, optionally with an incremental update."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        b"<< /Length 35 >>\nstream\nBT /F1 12 Tf 20 100 Td (hi) Tj ET\nendstream",
    ]
    out, xref = pdf_with_xref(objs)
    if update:
        new = len(out)
        out += b"4 0 obj\n<< /Length 35 >>\nstream\nBT /F1 12 Tf 20 100 Td (ho) Tj ET\nendstream\nendobj\n"
        xref2 = len(out)
        out += b"xref\n4 1\n%010d 00000 n \n" % new
        out += b"trailer\n<< /Size 5 /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (xref, xref2)
    return bytes(out)


class _Unseekable(io.RawIOBase):
    """A write-only stream, which makes zipfile write streamed entries with data descriptors."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.buf += b
        return len(b)


def _zip(members: list[tuple[str, bytes, int]], comment: bytes = b"", streamed: bool = False) -> bytes:
    sink: io.BytesIO | _Unseekable = _Unseekable() if streamed else io.BytesIO()
    with zipfile.ZipFile(sink, "w") as z:  # type: ignore[arg-type]
        for name, data, method in members:
            z.writestr(name, data, compress_type=method)
        z.comment = comment
    return bytes(sink.buf) if isinstance(sink, _Unseekable) else sink.getvalue()


def _sqlite(path: Path, page_size: int = 4096, rows: int = 3000, wal: bool = False) -> bytes:
    con = sqlite3.connect(path)
    try:
        con.execute(f"PRAGMA page_size={page_size}")
        if wal:
            con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE msg (id INTEGER PRIMARY KEY, sender TEXT, body TEXT, ts INTEGER)")
        con.execute("CREATE INDEX msg_sender ON msg(sender)")
        con.execute("CREATE TABLE contact (name TEXT, photo BLOB)")
        con.executemany(
            "INSERT INTO msg (sender, body, ts) VALUES (?, ?, ?)",
            [(f"user{i % 37}", f"message {i} " * (i % 9 + 1), 1_700_000_000 + i) for i in range(rows)],
        )
        con.executemany("INSERT INTO contact VALUES (?, ?)", [(f"c{i}", bytes(range(256)) * 3) for i in range(50)])
        con.execute("CREATE VIEW recent AS SELECT * FROM msg WHERE ts > 1700000100")
        con.commit()
    finally:
        con.close()
    return path.read_bytes()


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, expected carved type) for every real sample object."""
    im = _image()
    thumb = _save(_image((32, 24), seed=1), "JPEG", quality=70)
    frames = [_image((40, 30), seed=s).convert("P") for s in range(4)]
    jpeg = _save(im, "JPEG", quality=85)
    png = _save(im, "PNG")
    tmp = tmp_path_factory.mktemp("carve-samples")
    office = zipfile.ZIP_DEFLATED
    out = {
        "jpeg": (jpeg, "jpeg"),
        "jpeg_progressive": (_save(im, "JPEG", quality=85, progressive=True), "jpeg"),
        "jpeg_exif_thumb": (_save(im, "JPEG", quality=85, exif=_exif_with_thumbnail(thumb)), "jpeg"),
        "jpeg_restart": (_save(im.convert("L"), "JPEG", quality=60, restart_marker_blocks=1), "jpeg"),
        "png": (png, "png"),
        "png_palette": (_save(im.convert("P"), "PNG", optimize=True), "png"),
        "gif": (_save(im.convert("P"), "GIF"), "gif"),
        "gif_animated": (_save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0), "gif"),
        "pdf_pillow": (_save(im, "PDF"), "pdf"),
        "pdf_handmade": (_handmade_pdf(), "pdf"),
        "pdf_updated": (_handmade_pdf(update=True), "pdf"),
        "zip": (_zip([("a.txt", b"hello " * 500, office), ("pic.jpg", jpeg, zipfile.ZIP_STORED)]), "zip"),
        "zip_streamed": (
            _zip([("a.txt", b"hello " * 500, office), ("b.png", png, zipfile.ZIP_STORED)], streamed=True),
            "zip",
        ),
        "zip_comment": (_zip([("a.txt", b"x" * 100, office)], comment=b"archived by test"), "zip"),
        "docx": (
            _zip([("[Content_Types].xml", b"<Types/>", office), ("_rels/.rels", b"<R/>", office),
                  ("word/document.xml", b"<w:document/>" * 50, office)]),
            "docx",
        ),
        "xlsx": (_zip([("[Content_Types].xml", b"<Types/>", office), ("xl/workbook.xml", b"<wb/>", office)]), "xlsx"),
        "odt": (
            _zip([("mimetype", b"application/vnd.oasis.opendocument.text", zipfile.ZIP_STORED),
                  ("content.xml", b"<office:document-content/>" * 20, office),
                  ("META-INF/manifest.xml", b"<manifest/>", office)]),
            "odt",
        ),
        "sqlite": (_sqlite(tmp / "a.db"), "sqlite"),
        "sqlite_small_pages": (_sqlite(tmp / "b.db", page_size=512, rows=400), "sqlite"),
        "sqlite_wal": (_sqlite(tmp / "c.db", page_size=1024, rows=500, wal=True), "sqlite"),
    }
    assert thumb in out["jpeg_exif_thumb"][0]  # Pillow kept our thumbnail
    return out


def _filler(kind: str, n: int, rnd: random.Random) -> bytes:
    return rnd.randbytes(n) if kind == "random" else bytes(n)


@pytest.fixture(scope="session")
def plant() -> Callable[..., tuple[bytes, list[Truth]]]:
    """Lay out ``(bytes, type)`` items in filler; type None means "must not be reported".

    Returns the buffer and the expected truth. ``gap`` filler bytes go before
    each item and after the last (0 = back to back).
    """

    def _plant(
        items: list[tuple[bytes, str | None]], *, filler: str = "random", gap: int = 3001, seed: int = 7
    ) -> tuple[bytes, list[Truth]]:
        rnd = random.Random(seed)
        buf, truth = bytearray(), []
        for data, kind in items:
            buf += _filler(filler, gap, rnd)
            if kind is not None:
                truth.append((len(buf), len(data), sha(data), kind))
            buf += data
        buf += _filler(filler, gap, rnd)
        return bytes(buf), truth

    return _plant


@pytest.fixture(scope="session")
def carve_all() -> Callable[..., list[Truth]]:
    """Scan a whole buffer and describe each object as (offset, length, sha256, type)."""

    def _carve_all(data: bytes, **kw: object) -> list[Truth]:
        return [(c.offset, c.length, sha(data[c.offset : c.end]), c.type) for c in scan(BytesReader(data), **kw)]

    return _carve_all


@pytest.fixture(scope="session")
def mutate() -> Callable[[bytes, Any], bytes]:
    """Corrupt a valid object a little (a few bytes changed, maybe cut short) for fuzzing.

    Small mutations of real objects reach the deep parsing paths that purely
    random bytes never get past the header to. ``data`` is hypothesis' ``st.data()``.
    """

    def _mutate(obj: bytes, data: Any) -> bytes:
        out = bytearray(obj)
        for _ in range(data.draw(st.integers(0, 4))):
            out[data.draw(st.integers(0, len(out) - 1))] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(out)))
        return bytes(out[:cut]) + data.draw(st.binary(max_size=64))

    return _mutate
