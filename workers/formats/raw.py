"""Raw (dd) images, whole or split into numbered segments (.000/.001, .002, ...).

Both are their own media stream, so their image hash reads the files straight
into one reused buffer, and a single raw file is handed to TSK's own raw backend.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytsk3

from triage.workers.formats import ImageFormat, PyImg, image_format
from triage.workers.refs import ImageRef


class SegmentedFile:
    """Read-only random access over raw segments laid end to end."""

    def __init__(self, paths: list[str]) -> None:
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed by close()
        self._starts: list[int] = []
        pos = 0
        for f in self._files:
            self._starts.append(pos)
            pos += os.fstat(f.fileno()).st_size
        self.size = pos

    def read(self, offset: int, size: int) -> bytes:
        out = []
        end = min(offset + size, self.size)
        i = 0
        while offset < end:
            while i + 1 < len(self._starts) and self._starts[i + 1] <= offset:
                i += 1
            f = self._files[i]
            seg_end = self._starts[i + 1] if i + 1 < len(self._starts) else self.size
            n = min(end, seg_end) - offset
            data = os.pread(f.fileno(), n, offset - self._starts[i])
            if not data:
                break
            out.append(data)
            offset += len(data)
        return b"".join(out)

    def close(self) -> None:
        for f in self._files:
            f.close()


class _RawFiles(ImageFormat):
    """What raw and split raw share: the media is the files themselves."""

    MEDIA_IS_FILES = True

    def open_media(self, ref: ImageRef) -> SegmentedFile:
        return SegmentedFile(list(ref.segments))

    def measure(self, ref: ImageRef) -> int:
        return sum(Path(s).stat().st_size for s in ref.segments)

    def iter_media(self, ref: ImageRef, chunk: int) -> Iterator[bytes | memoryview]:
        buf = bytearray(chunk)  # one buffer reused: no 4 MiB allocation per read
        view = memoryview(buf)
        for seg in ref.segments:
            with open(seg, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    yield view[:n]


@image_format
class SplitRawFormat(_RawFiles):
    NAME = "splitraw"
    DESCRIPTION = "raw image split into numbered segments (.000/.001, .002, ...)"
    PRIORITY = 50

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        m = re.search(r"\.(\d{3,})$", path.name)
        if not m:
            return None
        width, first = len(m.group(1)), int(m.group(1))
        if first not in (0, 1):
            return None
        stem = path.name[: m.start()]
        segs = []
        n = first
        while (p := path.with_name(f"{stem}.{n:0{width}d}")).is_file():
            segs.append(str(p))
            n += 1
        return segs if len(segs) > 1 else None


@image_format
class RawFormat(_RawFiles):
    NAME = "raw"
    DESCRIPTION = "raw / dd image of a disk, a partition or a bare filesystem"
    PRIORITY = 100  # accepts any file: tried last

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        return [str(path)]

    def open_tsk(self, ref: ImageRef) -> pytsk3.Img_Info:
        # TSK's raw backend opens the file O_RDONLY and reads it without a Python round trip.
        return pytsk3.Img_Info(ref.path)


__all__ = ["PyImg", "RawFormat", "SegmentedFile", "SplitRawFormat"]
