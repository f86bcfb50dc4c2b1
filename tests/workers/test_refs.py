"""Descriptions validate themselves and round-trip through pickle, the way they reach a worker."""

import pickle

import pytest
from hypothesis import given, strategies as st

from triage.rules.errors import TriageError
from triage.workers.refs import ContentBatch, ContentItem, ContentOptions, ImageRef, KnownRef, PinnedSet, VolumeRef

IMG = ImageRef("/evidence/disk.E01", "ewf", ("/evidence/disk.E01", "/evidence/disk.E02"), 123)


def test_zero_offset_and_inode_are_valid():
    vol = VolumeRef(IMG, 0, 0, 0)
    item = ContentItem(row=0, inode=0, attr_type=None, attr_id=None, size=0, name="x")
    assert vol.offset == 0 and item.inode == 0


@pytest.mark.parametrize("bad", [
    lambda: ImageRef("", "raw", ("a",), 1),
    lambda: ImageRef("a", "raw", (), 1),
    lambda: VolumeRef(IMG, 0, -1, 5),
    lambda: ContentItem(row=0, inode=-3, attr_type=None, attr_id=None, size=0, name="x"),
    lambda: ContentOptions(chunk_bytes=0, magic_bytes=1, max_image_bytes=1, max_image_pixels=1),
])
def test_invalid_descriptions_are_refused(bad):
    with pytest.raises(TriageError):
        bad()


@given(inode=st.integers(0, 2**63), size=st.integers(0, 2**40), name=st.text(), attr=st.none() | st.integers(0, 255))
def test_content_batch_round_trips(inode, size, name, attr):
    batch = ContentBatch(VolumeRef(IMG, 2, 1048576, 4096),
                         (ContentItem(row=1, inode=inode, attr_type=attr, attr_id=attr, size=size, name=name),),
                         ContentOptions(4096, 64, 1 << 20, 1000),
                         KnownRef("/home", 10, (PinnedSet("bad", "known-bad", "bad/1", ["md5", "phash"]),)))
    assert pickle.loads(pickle.dumps(batch)) == batch
