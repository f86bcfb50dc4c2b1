"""PDF carver: header to the last %%EOF whose startxref points at an xref, within bounds."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.workers.carve import BytesReader, registry

PDFS = ["pdf_pillow", "pdf_handmade", "pdf_updated"]


@pytest.fixture(scope="module")
def pdf() -> registry.Carver:
    return registry.get("pdf")


@pytest.mark.parametrize("name", PDFS)
def test_whole_object_length(samples: dict, pdf: registry.Carver, name: str) -> None:
    data = samples[name][0]
    assert pdf.carve(BytesReader(data + bytes(100)), 0) == len(data)


@pytest.mark.parametrize("filler", ["random", "zeros"])
@pytest.mark.parametrize("gap", [0, 3001])
def test_planted_exact_recall(samples: dict, plant: Callable, carve_all: Callable, filler: str, gap: int) -> None:
    data, truth = plant([samples[n] for n in PDFS] * 2, filler=filler, gap=gap)
    assert carve_all(data) == truth


def test_pillow_pdf_hides_its_jpeg_stream(samples: dict, plant: Callable, carve_all: Callable) -> None:
    """Pillow stores the picture as a DCTDecode stream: a raw JPEG inside the PDF, not reported alone."""
    doc = samples["pdf_pillow"][0]
    assert b"\xff\xd8\xff" in doc
    data, truth = plant([samples["pdf_pillow"]])
    assert carve_all(data) == truth


def test_incremental_update_ends_at_last_eof(samples: dict, pdf: registry.Carver) -> None:
    updated = samples["pdf_updated"][0]
    first_eof = updated.index(b"%%EOF") + 6
    assert pdf.carve(BytesReader(updated), 0) == len(updated)
    # cut inside the update: the first revision is still a whole PDF
    assert pdf.carve(BytesReader(updated[: first_eof + 40] + bytes(500)), 0) == first_eof


@pytest.mark.parametrize("name", ["pdf_pillow", "pdf_handmade"])
@pytest.mark.parametrize("where", [0.1, 0.5, -8])
@pytest.mark.parametrize("filler", ["random", "zeros", "end"])
def test_truncated_is_not_reported(samples: dict, pdf: registry.Carver, name: str, where: float, filler: str) -> None:
    data = samples[name][0]
    cut = len(data) + int(where) if where < 0 else int(len(data) * where)
    tail = {"random": random.Random(cut).randbytes(4096), "zeros": bytes(4096), "end": b""}[filler]
    assert pdf.carve(BytesReader(data[:cut] + tail), 0) is None


def test_eof_of_another_headerless_pdf_does_not_extend(samples: dict, pdf: registry.Carver) -> None:
    """A headerless PDF tail's EOF has a startxref relative to *its* lost header: rejected."""
    doc = samples["pdf_handmade"][0]
    orphan = samples["pdf_pillow"][0][200:]
    assert pdf.carve(BytesReader(doc + bytes(1000) + orphan), 0) == len(doc)


def test_needs_startxref_before_eof(pdf: registry.Carver) -> None:
    assert pdf.carve(BytesReader(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n"), 0) is None
    assert pdf.carve(BytesReader(b"%PDF-1.7\nxref\nstartxref\n9999\n%%EOF\n"), 0) is None  # points outside
    good = b"%PDF-1.7\nxref\n0 1\n0000000000 65535 f \ntrailer<<>>\nstartxref\n9\n%%EOF"
    assert pdf.carve(BytesReader(good), 0) == len(good)


def test_next_header_stops_the_search(samples: dict, pdf: registry.Carver) -> None:
    """A header with no EOF before the next document is not stretched over that document."""
    doc = samples["pdf_handmade"][0]
    assert pdf.carve(BytesReader(b"%PDF-1.4\n" + bytes(100) + doc), 0) is None


def test_pdf_in_front_of_much_data_reads_a_bounded_amount(samples: dict, pdf: registry.Carver) -> None:
    """After a valid EOF only UPDATE_GAP more bytes are searched, not the 64 MiB cap."""
    from triage.workers.carve.pdf import UPDATE_GAP

    doc = samples["pdf_handmade"][0]
    reads: list[int] = []

    class Counting(BytesReader):
        def read(self, offset: int, size: int) -> bytes:
            out = super().read(offset, size)
            reads.append(len(out))
            return out

        def view(self, offset: int, size: int) -> memoryview:  # the search windows
            out = super().view(offset, size)
            reads.append(len(out))
            return out

    assert pdf.carve(Counting(doc + bytes(48 << 20)), 0) == len(doc)
    assert sum(reads) < 2 * UPDATE_GAP + (2 << 20)


@given(st.data())
def test_mutated_pdf_is_none_or_bounded(samples: dict, pdf: registry.Carver, mutate: Callable, data: Any) -> None:
    obj = mutate(samples[data.draw(st.sampled_from(PDFS))][0], data)
    n = pdf.carve(BytesReader(obj), 0)
    assert n is None or 0 < n <= len(obj)


MARKS = [b"%%EOF", b"%PDF-", b"%%%EOF", b"%%PDF-", b"%PDF-%%EOF"]


@settings(max_examples=200, deadline=None)
@given(spots=st.lists(st.tuples(st.integers(0, 3 << 16), st.sampled_from(MARKS)), max_size=16),
       edges=st.lists(st.tuples(st.integers(0, 1), st.integers(-6, 2), st.sampled_from(MARKS)), max_size=4),
       pos=st.integers(0, 1 << 16), limit=st.integers(0, 3 << 16), engine=st.sampled_from(["hyperscan", "find"]))
def test_marks_are_the_regex_matches(spots: list[tuple[int, bytes]], edges: list[tuple[int, int, bytes]], pos: int,
                                     limit: int, engine: str) -> None:
    """The literal matcher's EOF and header marks (either engine, across window edges) are exactly the
    regex alternation's matches, which is what the carver searched with before."""
    import re

    from triage.workers.carve.pdf import _marks
    from triage.workers.carve.scanner import finder
    from triage.workers.carve.stream import BLOCK, Cursor

    data = bytearray(random.Random(len(spots)).randbytes(3 << 16))
    # the first two search windows end at pos + BLOCK and pos + 3 * BLOCK - 4: marks across those edges
    spots = spots + [(pos + (BLOCK if k == 0 else 3 * BLOCK - 4) + d, mark) for k, d, mark in edges]
    for at, mark in spots:
        data[at : at + len(mark)] = mark[: max(0, len(data) - at)]
    data = bytes(data[: 3 << 16])
    marks = finder((b"%%EOF", b"%PDF-"))
    saved = marks._db
    if engine == "find":
        marks._db = None
    try:
        cur = Cursor(BytesReader(data), 0, len(data))
        cur.pos = pos
        got = list(_marks(cur, limit))
    finally:
        marks._db = saved
    ref = Cursor(BytesReader(data), 0, len(data))
    ref.pos = pos
    want = [(o, m.group()) for o, m in ref.finditer(re.compile(rb"%%EOF|%PDF-"), 5, limit)]
    assert got == want
