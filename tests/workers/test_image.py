"""Recognising containers: formats, segments, unsupported ones, bad paths."""

import pytest

from triage.rules.errors import ImageError, UnsupportedFormatError
from triage.workers.image import identify, iter_media


def test_split_raw_lists_every_segment(tmp_path):
    for i, data in enumerate([b"a" * 1000, b"b" * 1000, b"c" * 10], start=1):
        (tmp_path / f"disk.{i:03d}").write_bytes(data)
    ref = identify(tmp_path / "disk.001")
    assert ref.format == "splitraw"
    assert [p.rsplit(".", 1)[1] for p in ref.segments] == ["001", "002", "003"]
    assert ref.size == 2010
    assert b"".join(bytes(c) for c in iter_media(ref, chunk=64)) == b"a" * 1000 + b"b" * 1000 + b"c" * 10


def test_lone_numbered_file_is_plain_raw(tmp_path):
    (tmp_path / "disk.001").write_bytes(b"x" * 512)
    assert identify(tmp_path / "disk.001").format == "raw"


@pytest.mark.parametrize("head,name", [(b"QFI\xfb", "QCOW"), (b"KDMV", "VMDK"), (b"vhdxfile", "VHDX")])
def test_unsupported_containers_say_so(tmp_path, head, name):
    p = tmp_path / "x.img"
    p.write_bytes(head + b"\x00" * 4096)
    with pytest.raises(UnsupportedFormatError, match=f"unsupported format: {name}"):
        identify(p)


def test_missing_empty_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        identify(tmp_path / "nope.dd")
    (tmp_path / "empty.E01").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        identify(tmp_path / "empty.E01")
    with pytest.raises(ImageError, match="directory"):
        identify(tmp_path)


def test_truncated_ewf_header_is_an_image_error(tmp_path):
    p = tmp_path / "cut.E01"
    p.write_bytes(b"EVF\x09\x0d\x0a\xff\x00" + b"\x01" * 100)
    with pytest.raises(ImageError, match="cut.E01"):
        identify(p)
