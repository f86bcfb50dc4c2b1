"""Hash state carried across a process boundary gives hashlib's digests."""

import hashlib
import multiprocessing
import random

import pytest
from hypothesis import given, settings, strategies as st

from triage.workers.resumable import ResumableHashes, available

pytestmark = pytest.mark.skipif(not available(), reason="no OpenSSL libcrypto")


def _continue(state: bytes, data: bytes) -> bytes:
    h = ResumableHashes(state)
    h.update(data)
    return h.state()


@given(st.lists(st.binary(max_size=5000), max_size=6))
@settings(max_examples=50)
def test_split_anywhere_equals_hashlib(parts):
    h = ResumableHashes()
    for p in parts:
        h = ResumableHashes(h.state())  # as if each part ran in another task
        h.update(p)
    whole = b"".join(parts)
    assert h.hexdigests() == {a: hashlib.new(a, whole).hexdigest() for a in ("md5", "sha1", "sha256")}


def test_state_survives_another_process():
    data = random.Random(3).randbytes(3 << 20)
    h = ResumableHashes()
    h.update(data[:1 << 20])
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        state = pool.apply(_continue, (h.state(), data[1 << 20:]))
    assert ResumableHashes(state).hexdigests()["sha256"] == hashlib.sha256(data).hexdigest()


def test_bad_state_is_refused():
    with pytest.raises(ValueError):
        ResumableHashes(b"short")
