"""The bounded cursor every carver reads through: its buffered fast paths give the windowed answers."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from triage.workers.carve import BytesReader
from triage.workers.carve.stream import BLOCK, Cursor

ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
MARKS = re.compile(rb"%%EOF|%PDF-")


def _windowed(data: bytes, pattern: re.Pattern[bytes], longest: int, pos: int, limit: int | None) -> int | None:
    """The first match by the windowed search alone, from a cursor that holds no block."""
    cur = Cursor(BytesReader(data), 0, len(data))
    cur.pos = pos
    hit = next(cur.finditer(pattern, longest, limit), None)
    return None if hit is None else hit[0]


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=600),
    spots=st.lists(st.tuples(st.integers(0, 3 * BLOCK), st.sampled_from([b"\xff\xd9", b"\xff\x00", b"\xff\xd3",
                                                                        b"%%EOF", b"%PDF-", b"\xff\xff"])),
                   max_size=12),
    size=st.integers(0, 3 * BLOCK),
    first=st.integers(0, 4 * BLOCK),
    limit=st.one_of(st.none(), st.integers(0, 3 * BLOCK)),
)
def test_search_in_the_held_block_equals_the_windowed_search(
    data: bytes, spots: list[tuple[int, bytes]], size: int, first: int, limit: int | None
) -> None:
    """A match near the end of the block the cursor holds (an earlier, longer one might run past it)
    and matches beyond the block are found exactly where the windowed search finds them."""
    buf = bytearray((data * (size // max(1, len(data)) + 1))[:size] if data else bytes(size))
    for at, mark in spots:
        buf[at : at + len(mark)] = mark[: max(0, len(buf) - at)]
    buf = bytes(buf)
    for pattern, longest in ((ENTROPY_END, 2), (MARKS, 5)):
        cur = Cursor(BytesReader(buf), 0, len(buf))
        pos = min(first % (len(buf) + 1), len(buf))
        cur.peek(1) if pos == 0 else cur.at(min(pos, max(0, len(buf) - 1)), 1)  # the block the carver holds
        cur.pos = pos
        hit = cur.search(pattern, longest, limit)
        assert (None if hit is None else hit[0]) == _windowed(buf, pattern, longest, pos, limit)


def test_match_straddling_the_held_block_is_found() -> None:
    """An EOI whose FF is the last byte of the held block and whose D9 is the first byte after it."""
    data = bytes(BLOCK - 1) + b"\xff\xd9" + bytes(100)
    cur = Cursor(BytesReader(data), 0, len(data))
    assert cur.take(2) == b"\x00\x00"  # holds [0, BLOCK)
    hit = cur.search(ENTROPY_END, 2)
    assert hit is not None and hit[0] == BLOCK - 1


def test_take_inside_and_across_the_block() -> None:
    data = bytes(range(256)) * (2 * BLOCK // 256 + 1)
    cur = Cursor(BytesReader(data), 0, len(data))
    assert cur.take(3) == data[:3]
    cur.pos = BLOCK - 2
    assert cur.take(4) == data[BLOCK - 2 : BLOCK + 2]
    assert cur.at(len(data) - 1, 2) is None  # past the object's end
    assert Cursor(BytesReader(data), 10, 5).at(9, 1) is None  # before its start
