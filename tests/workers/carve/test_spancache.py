"""SpanCache: the same bytes as the reader it wraps, and each byte of a carved extent read from it once."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from triage.workers.carve import BytesReader, SpanCache, iter_scan, scan

ALL = ["jpeg", "jpeg_progressive", "jpeg_exif_thumb", "png", "gif", "gif_animated", "pdf_pillow", "pdf_updated", "zip",
       "zip_streamed", "docx", "odt", "sqlite"]


class CountingReader(BytesReader):
    """The bytes a reader was asked for: what a task reads from the image."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes = 0

    def read(self, offset: int, size: int) -> bytes:
        data = super().read(offset, size)
        self.bytes += len(data)
        return data

    def view(self, offset: int, size: int) -> memoryview:
        data = super().view(offset, size)
        self.bytes += len(data)
        return data


DATA = random.Random(5).randbytes(300_000)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(DATA) + 100), st.integers(0, 70_000)), min_size=1, max_size=40),
       st.integers(1, 200_000), st.integers(1, 20_000))
def test_reads_equal_the_wrapped_reader(reads: list[tuple[int, int]], capacity: int, min_read: int) -> None:
    plain, cached = BytesReader(DATA), SpanCache(BytesReader(DATA), capacity=capacity, min_read=min_read)
    for offset, size in reads:
        assert cached.read(offset, size) == plain.read(offset, size)
        assert bytes(cached.view(offset, size)) == plain.read(offset, size)


def test_view_of_a_cached_span_is_not_a_copy() -> None:
    """A search window inside bytes the scan already holds is lent as a view: nothing read, nothing copied."""
    counting = CountingReader(DATA)
    cached = SpanCache(counting, min_read=1)
    cached.read(1000, 100_000)
    before = counting.bytes
    v = cached.view(5000, 60_000)
    assert isinstance(v, memoryview) and v == DATA[5000:65_000] and counting.bytes == before
    assert isinstance(cached.view(90_000, 20_000), bytes)  # runs past the span: read (the gap only) and joined
    assert counting.bytes == before + 9_000


def test_a_read_inside_cached_spans_reads_nothing_more() -> None:
    inner = CountingReader(DATA)
    cache = SpanCache(inner, min_read=1000)
    assert cache.read(1000, 5000) == DATA[1000:6000]
    assert cache.read(6000, 4000) == DATA[6000:10000]
    fetched = inner.bytes
    assert cache.read(2000, 7000) == DATA[2000:9000]  # across the two spans: joined, not fetched
    assert cache.read(500, 1000) == DATA[500:1500]     # only the 500-byte gap before them is fetched
    assert inner.bytes - fetched == 1000                # min_read: the gap is read as 1000 bytes
    assert cache.read(1000, 5000) is cache.read(1000, 5000)  # a whole fetched span comes back uncopied


def test_eviction_keeps_memory_bounded() -> None:
    cache = SpanCache(BytesReader(DATA), capacity=50_000, min_read=10_000)
    for offset in range(0, len(DATA), 10_000):
        cache.read(offset, 10_000)
    assert cache._held <= 50_000 and len(cache._spans) <= 5


def test_scanning_and_digesting_read_each_byte_once(samples: dict, plant: Callable) -> None:
    """The carve task's pattern: scan, validate, then read each object whole (the digest); through
    the cache the extent is read from the image about once, without it about twice or more."""
    data, truth = plant([samples[n] for n in ALL] * 3, gap=50_000)

    def carve(reader: CountingReader | SpanCache) -> list[tuple[int, int, str]]:
        out = []
        for obj in iter_scan(reader, window=1 << 20):
            out.append((obj.offset, obj.length, hashlib.sha256(reader.read(obj.offset, obj.length)).hexdigest()))
        return out

    plain = CountingReader(data)
    without = carve(plain)
    inner = CountingReader(data)
    cache = SpanCache(inner)
    with_cache = carve(cache)
    assert with_cache == without == [(o, n, s) for o, n, s, _ in truth]
    assert [(c.offset, c.length) for c in scan(BytesReader(data), window=1 << 20)] == [(o, n) for o, n, _ in without]
    assert inner.bytes == cache.fetched <= 1.02 * len(data)  # each byte about once
    assert plain.bytes > 2 * len(data)  # what the cache saves: scan window, carver and digest each read it
