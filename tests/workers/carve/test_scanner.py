"""The scanner: exact recall, no false objects, chunking, look-back, bounded memory."""

from __future__ import annotations

import dataclasses
import itertools
import random
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.rules.errors import TriageError
from triage.workers.carve import BytesReader, Carved, FileReader, UnknownCarverError, scan

ALL = [
    "jpeg", "jpeg_progressive", "jpeg_exif_thumb", "jpeg_restart", "png", "png_palette", "gif",
    "gif_animated", "pdf_pillow", "pdf_handmade", "pdf_updated", "zip", "zip_streamed", "zip_comment",
    "docx", "xlsx", "odt", "sqlite", "sqlite_small_pages", "sqlite_wal",
]


@pytest.fixture(scope="module")
def mixed(samples: dict, plant: Callable) -> tuple[bytes, list]:
    """Every sample, shuffled with a fixed seed, in random filler, some back to back."""
    items = [samples[n] for n in ALL]
    random.Random(11).shuffle(items)
    data, truth = plant(items, gap=1237)
    return data, truth


@pytest.mark.parametrize("filler", ["random", "zeros"])
@pytest.mark.parametrize("gap", [0, 1, 4099])
def test_every_type_exact_recall(samples: dict, plant: Callable, carve_all: Callable, filler: str, gap: int) -> None:
    data, truth = plant([samples[n] for n in ALL], filler=filler, gap=gap)
    assert carve_all(data) == truth


def test_no_false_objects_in_random_data(carve_all: Callable) -> None:
    data = random.Random(20240601).randbytes(8 << 20)
    assert carve_all(data) == []


@pytest.mark.parametrize("fill", [b"\x00", b"\xff", b"PK", b"\xff\xd8\xff", b"PK\x03\x04", b"GIF89a"])
def test_no_false_objects_in_uniform_data(carve_all: Callable, fill: bytes) -> None:
    """Erased media, and runs of nothing but headers (each one a candidate), stay cheap."""
    assert carve_all(fill * ((256 << 10) // len(fill))) == []


@pytest.mark.parametrize("chunk", [997, 4096, 65536, 300_001])
def test_adjacent_chunks_report_each_object_once(mixed: tuple, chunk: int) -> None:
    """Objects straddling a chunk end (and headers split by it) belong to the chunk they start in."""
    data, truth = mixed
    reader = BytesReader(data)
    whole = scan(reader)
    assert [(c.offset, c.length) for c in whole] == [(o, n) for o, n, _, _ in truth]
    # look-back covering the largest container (the 350 KiB database) makes chunks agree exactly
    pieces = [c for a in range(0, len(data), chunk) for c in scan(reader, a, a + chunk, overlap=400_000)]
    assert pieces == whole
    straddling = [c for c in whole if c.offset // chunk != (c.end - 1) // chunk]
    assert straddling, "the layout should put some objects across chunk ends"


def test_header_split_by_chunk_end(samples: dict) -> None:
    doc = samples["pdf_handmade"][0]
    data = bytes(1000) + doc + bytes(1000)
    reader = BytesReader(data)
    first, second = scan(reader, 0, 1002), scan(reader, 1002, len(data))
    assert [(c.offset, c.length) for c in first] == [(1000, len(doc))] and second == []


def test_overlap_hides_members_of_a_container_from_the_previous_chunk(samples: dict) -> None:
    """Without look-back the next chunk cannot know it starts inside an archive."""
    archive = samples["zip"][0]
    member = archive.index(samples["jpeg"][0])
    data = bytes(500) + archive + bytes(500)
    reader = BytesReader(data)
    b = 500 + member - 10  # chunk boundary inside the archive, before the stored JPEG
    assert [c.type for c in scan(reader, b, len(data))] == ["jpeg"]  # documented: no look-back
    assert scan(reader, b, len(data), overlap=len(archive)) == []
    assert [c.type for c in scan(reader, 0, b)] == ["zip"]


@pytest.mark.parametrize("window", [64, 1000, 1 << 16])
def test_window_size_does_not_change_results(mixed: tuple, window: int) -> None:
    data, _ = mixed
    reader = BytesReader(data)
    assert scan(reader, window=window) == scan(reader)


def test_file_reader_matches_bytes_reader(mixed: tuple, tmp_path: Path) -> None:
    data, _ = mixed
    path = tmp_path / "image.raw"
    path.write_bytes(b"\x00" * 4096 + data + b"\x00" * 100)
    with FileReader(path, 4096, len(data)) as reader:
        assert scan(reader) == scan(BytesReader(data))


def test_carver_selection(mixed: tuple) -> None:
    data, truth = mixed
    only = scan(BytesReader(data), carvers=["png", "gif"])
    assert {c.type for c in only} == {"png", "gif"}
    planted = {t[0] for t in truth if t[3] in ("png", "gif")}
    found = {c.offset for c in only}
    assert planted <= found
    # the extra ones are members of archives, found because the zip carver was not selected
    zips = [(o, o + n) for o, n, _, t in truth if t == "zip"]
    assert all(any(a < off < b for a, b in zips) for off in found - planted) and found - planted
    with pytest.raises(UnknownCarverError, match="known: gif, jpeg, pdf, png, sqlite, zip"):
        scan(BytesReader(data), carvers=["jpg"])


def test_bad_ranges() -> None:
    reader = BytesReader(bytes(100))
    assert scan(reader, 50, 50) == [] and scan(reader, 200, 300) == []
    with pytest.raises(TriageError):
        scan(reader, -1, 10)
    with pytest.raises(TriageError):
        scan(reader, 0, 10, overlap=-1)


def test_carved_is_frozen_and_validated() -> None:
    c = Carved(0, 10, "jpeg", "jpg", "image/jpeg")
    assert c.end == 10 and dataclasses.asdict(c)["offset"] == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.offset = 3  # type: ignore[misc]
    with pytest.raises(TriageError):
        Carved(-1, 10, "jpeg", "jpg", "image/jpeg")
    with pytest.raises(TriageError):
        Carved(0, 0, "jpeg", "jpg", "image/jpeg")


class _Zeros:
    """A 256 MiB extent of zeros that exists only as it is read."""

    size = 256 << 20

    def read(self, offset: int, size: int) -> bytes:
        return bytes(max(0, min(size, self.size - offset)))


def test_memory_is_bounded_by_the_window_not_the_extent() -> None:
    tracemalloc.start()
    try:
        assert scan(_Zeros(), window=1 << 20) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


@settings(max_examples=60)
@given(st.binary(max_size=4096), st.integers(1, 600), st.integers(0, 300))
def test_arbitrary_bytes_give_sorted_disjoint_bounded_objects(data: bytes, chunk: int, overlap: int) -> None:
    reader = BytesReader(data)
    whole = scan(reader, window=256)
    for a, b in itertools.pairwise(whole):
        assert a.end <= b.offset
    assert all(0 <= c.offset and c.end <= len(data) for c in whole)
    parts = [c for a in range(0, len(data), chunk) for c in scan(reader, a, a + chunk, overlap=len(data))]
    assert parts == whole


def test_one_pass_finder_is_hyperscan_and_agrees_with_find(mixed: tuple) -> None:
    """The multi-pattern scan reports exactly what one find pass per header reports, overlaps included."""
    from triage.workers.carve import registry
    from triage.workers.carve.scanner import HeaderFinder, finder

    registry.load()
    headers = tuple(sorted({h for c in registry.CARVERS.values() for h in c.HEADERS}))
    fast = finder(headers)
    pytest.importorskip("hyperscan")  # a dependency where wheels exist (x86_64); the fallback is tested anyway
    assert fast.engine == "hyperscan"
    slow = HeaderFinder(headers)
    slow._db = None  # the fallback a platform without Hyperscan takes
    data, _ = mixed
    tricky = (b"\xff\xd8\xff\xd8\xff" + b"GIF89aGIF87a" + b"PK\x03\x04" * 3 + b"SQLite format 3\x00"
              + b"SQLite format 3 " + data[:200_000] + b"%PDF")
    for buf, stop in ((data, len(data)), (tricky, len(tricky)), (tricky, 3), (tricky, 1)):
        assert fast.find(buf, stop) == slow.find(buf, stop)
    assert [o for o, _ in fast.find(tricky, len(tricky))][:4] == [0, 2, 5, 11]


def test_all_zero_skip_sees_a_single_late_byte() -> None:
    from triage.workers.carve.scanner import all_zero

    assert all_zero(bytes(1 << 20)) and all_zero(b"")
    assert not all_zero(bytes(1 << 20) + b"\x01") and not all_zero(b"\x01" + bytes(10))
