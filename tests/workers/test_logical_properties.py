"""Arbitrary bytes behind a zip, tar or gzip signature: the listing and the member reads never raise.

A broken archive is a status on the listing and on its members (``unreadable``,
``partial``), never an exception out of a task: the rest of the source is still triaged.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.plan import plan_batches
from triage.settings import content_options
from triage.workers.extraction import is_logical, read_members, walk_source
from triage.workers.image import identify
from triage.workers.refs import VolumeRef


def _archives() -> list[bytes]:
    """Small real archives whose bytes the test then damages."""
    tar, zipped = io.BytesIO(), io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for i in range(3):
            ti = tarfile.TarInfo(f"data/media/0/f{i}.txt")
            ti.size = 700
            tf.addfile(ti, io.BytesIO(bytes([65 + i]) * 700))
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"data/data/app/f{i}.db", bytes([97 + i]) * 900)
    return [tar.getvalue(), zipped.getvalue(), gzip.compress(tar.getvalue())]


ARCHIVES = _archives()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(range(len(ARCHIVES))), cut=st.integers(min_value=1, max_value=6000),
       flips=st.lists(st.tuples(st.integers(min_value=0, max_value=6000), st.integers(1, 255)), max_size=6))
def test_damaged_archives_list_and_read_without_raising(which, cut, flips):
    data = bytearray(ARCHIVES[which][:cut])
    for pos, x in flips:
        if 4 <= pos < len(data):  # the signature stays: it is still offered as this kind of source
            data[pos] ^= x
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "evidence.bin"
        p.write_bytes(bytes(data))
        ref = identify(p)
        if not is_logical(ref):  # cut or flipped before its signature ends: a raw file, not this test's
            return
        walk = walk_source(ref)
        assert "\n" not in walk.status
        for batch in plan_batches(VolumeRef(ref, 0, 0, ref.size), walk.table, 1 << 20, 2, content_options()):
            rows = read_members(batch).to_pylist()
            assert len(rows) == len(batch.items)
            assert all("\n" not in r["status"] for r in rows)
