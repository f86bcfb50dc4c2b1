"""Readers: short reads only at the end, extents inside a file, errors that name the file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from triage.rules.errors import ImageError
from triage.workers.carve import BytesReader, FileReader, Reader


def test_bytes_reader_short_read_at_end() -> None:
    r = BytesReader(b"0123456789")
    assert isinstance(r, Reader)
    assert (r.size, r.read(0, 4), r.read(8, 10), r.read(10, 5), r.read(50, 5)) == (10, b"0123", b"89", b"", b"")
    assert BytesReader(memoryview(b"abcdef")[2:]).read(0, 2) == b"cd"
    with pytest.raises(ValueError):
        r.read(-1, 2)


def test_file_reader_extent(tmp_path: Path) -> None:
    path = tmp_path / "img.raw"
    path.write_bytes(bytes(range(256)) * 4)
    with FileReader(path, 100, 50) as r:
        assert isinstance(r, Reader) and r.size == 50
        assert r.read(0, 3) == bytes([100, 101, 102])
        assert r.read(48, 10) == bytes([148, 149]) and r.read(50, 1) == b""
    with FileReader(path, 1000) as r:
        assert r.size == 24 and r.read(0, 100) == bytes(range(232, 256))
    with pytest.raises(ImageError, match="read after close"):
        r.read(0, 1)


def test_file_reader_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "img.raw"
    path.write_bytes(bytes(100))
    with pytest.raises(ImageError, match=r"img\.raw.*past the end"):
        FileReader(path, 50, 51)
    with pytest.raises(ImageError, match=r"missing\.raw"):
        FileReader(tmp_path / "missing.raw")
    with pytest.raises(ImageError, match="invalid extent"):
        FileReader(path, -1)


def test_file_reader_is_thread_safe(tmp_path: Path) -> None:
    """pread has no shared file position, so threads of one worker can share a reader."""
    path = tmp_path / "img.raw"
    data = bytes(range(256)) * 4096
    path.write_bytes(data)
    errors: list[int] = []
    with FileReader(path) as r:

        def work(seed: int) -> None:
            for i in range(500):
                off = (seed * 7919 + i * 104729) % (len(data) - 64)
                if r.read(off, 64) != data[off : off + 64]:
                    errors.append(off)

        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
