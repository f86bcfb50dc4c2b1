"""Every registered carver on arbitrary bytes: None or a length within bounds, nothing raised.

Parametrised over the registry, so a new carver module is fuzzed without a new test.
Byte strings start with one of the carver's headers half the time, to get past the
first check; ``test_<carver>.py`` files fuzz mutated real objects for the deep paths.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.workers.carve import BytesReader, registry

NAMES = registry.names()


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_arbitrary_bytes(name: str, data: st.DataObject) -> None:
    c = registry.get(name)
    header = data.draw(st.sampled_from([b"", *c.HEADERS]))
    body = data.draw(st.binary(max_size=2048))
    prefix = data.draw(st.binary(max_size=16))
    buf = prefix + header + body
    start = len(prefix)
    m = c.match(BytesReader(buf), start)
    assert m is None or (0 < m.length <= min(c.MAX_SIZE, len(buf) - start) and m.type and m.mime)
    n = c.carve(BytesReader(buf), start)
    assert n == (None if m is None else m.length)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_start_anywhere(name: str, data: st.DataObject) -> None:
    """A start offset at or past the end of the extent is just "nothing here"."""
    c = registry.get(name)
    buf = data.draw(st.binary(max_size=64))
    start = data.draw(st.integers(0, len(buf) + 8))
    assert c.carve(BytesReader(buf), start) is None or start < len(buf)
