"""Evidence containers: recognise an image's format and open it read-only.

A registry of formats (raw, split raw, EWF) each knows how to list its segments
and open a TSK image object; containers this version cannot read yet are
recognised by their signature so the user gets "unsupported format", not a
confusing "no filesystem". Open handles are cached per worker thread, keyed by
the :class:`ImageRef` description (dfVFS resolver-context style): the
description travels through the scheduler, the handle never does.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytsk3

from triage.rules.errors import ImageError, UnsupportedFormatError
from triage.workers.refs import ImageRef
from triage.workers.pathmap import localize

#: what pytsk3 raises: its own errors as OSError, and an exception from a Python-backed
#: image's read (pyewf, split raw) wrapped as RuntimeError
TSK_ERRORS = (OSError, RuntimeError)

EWF_SIGNATURES = (b"EVF\x09\x0d\x0a\xff\x00", b"EVF2\x0d\x0a\x81\x00")

#: signatures of containers recognised but not read yet: (where, offset, magic, name)
UNSUPPORTED = (
    ("head", 0, b"QFI\xfb", "QCOW"),
    ("head", 0, b"KDMV", "VMDK (sparse)"),
    ("head", 0, b"# Disk DescriptorFile", "VMDK (descriptor)"),
    ("head", 0, b"vhdxfile", "VHDX"),
    ("head", 0, b"conectix", "VHD"),
    ("tail", 512, b"conectix", "VHD"),
    ("tail", 512, b"koly", "DMG (UDIF)"),
    ("head", 0, b"LVF\x09\x0d\x0a\xff\x00", "EWF logical evidence (L01)"),
)


class ImageFormat(Protocol):
    NAME: str
    DESCRIPTION: str

    def segments(self, path: Path) -> list[str] | None: ...
    def open(self, ref: ImageRef) -> pytsk3.Img_Info: ...


FORMATS: dict[str, ImageFormat] = {}


def image_format(cls: type) -> type:
    """Register an image format class; formats are tried in registration order."""
    if cls.NAME in FORMATS:
        raise ValueError(f"image format {cls.NAME!r} registered twice")
    FORMATS[cls.NAME] = cls()
    return cls


class _PyImg(pytsk3.Img_Info):
    """A TSK image whose bytes come from Python: reads are delegated to ``reader``."""

    def __init__(self, reader: Callable[[int, int], bytes], size: int) -> None:
        self._reader = reader
        self._size = size
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def read(self, offset: int, size: int) -> bytes:  # called by TSK
        return self._reader(offset, size)

    def get_size(self) -> int:
        return self._size

    def close(self) -> None:
        pass


class SegmentedFile:
    """Read-only random access over raw segments laid end to end."""

    def __init__(self, paths: list[str]) -> None:
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 - kept open for the worker's life
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


@image_format
class EwfFormat:
    NAME = "ewf"
    DESCRIPTION = "Expert Witness / EnCase (E01, Ex01), single or multi-segment, via libewf"

    def segments(self, path: Path) -> list[str] | None:
        with path.open("rb") as f:
            head = f.read(8)
        if not head.startswith(EWF_SIGNATURES):
            return None
        import pyewf

        try:
            return sorted(pyewf.glob(str(path)))
        except OSError as exc:
            raise ImageError(f"{path}: EWF segments could not be listed: {_oneline(exc)}") from exc

    def open(self, ref: ImageRef) -> pytsk3.Img_Info:
        handle = open_ewf(ref)
        lock = threading.Lock()

        def read(offset: int, size: int) -> bytes:
            with lock:
                handle.seek(offset)
                return handle.read(size)

        return _PyImg(read, handle.get_media_size())


@image_format
class SplitRawFormat:
    NAME = "splitraw"
    DESCRIPTION = "raw image split into numbered segments (.000/.001, .002, ...)"

    def segments(self, path: Path) -> list[str] | None:
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

    def open(self, ref: ImageRef) -> pytsk3.Img_Info:
        seg = SegmentedFile(list(ref.segments))
        return _PyImg(seg.read, seg.size)


@image_format
class RawFormat:
    NAME = "raw"
    DESCRIPTION = "raw / dd image of a disk, a partition or a bare filesystem"

    def segments(self, path: Path) -> list[str] | None:
        return [str(path)]

    def open(self, ref: ImageRef) -> pytsk3.Img_Info:
        # TSK's raw backend opens the file O_RDONLY.
        return pytsk3.Img_Info(ref.path)


def _oneline(exc: BaseException) -> str:
    """One line of an exception, without pytsk3's source-location preamble."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "with error: " in text:
        text = text.rsplit("with error: ", 1)[1]
    return re.sub(r"^\w+: \(tsk3\.cpp:\d+\) ", "", text)


def open_ewf(ref: ImageRef):  # -> pyewf.handle
    import pyewf

    handle = pyewf.handle()
    try:
        handle.open(list(ref.segments), "r")
    except (OSError, IOError) as exc:
        raise ImageError(f"{ref.path}: EWF image cannot be opened: {_oneline(exc)}") from exc
    return handle


def identify(path: str | os.PathLike[str]) -> ImageRef:
    """Describe the image at ``path``: format, segments, media size. Reads a few bytes only."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, not an image file")
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(4096)
            tail = b""
            if size >= 512:
                f.seek(size - 512)
                tail = f.read(512)
    except OSError as exc:
        raise ImageError(f"{p}: cannot be read: {exc.strerror or _oneline(exc)}") from exc
    if size == 0:
        raise ImageError(f"{p}: empty file (0 bytes), not an image")
    for where, off, magic, name in UNSUPPORTED:
        buf = head if where == "head" else tail
        if buf[off : off + len(magic)] == magic if where == "head" else buf.startswith(magic):
            raise UnsupportedFormatError(f"{p}: unsupported format: {name} container (not readable in this version)")
    for fmt in FORMATS.values():
        segs = fmt.segments(p)
        if segs is None:
            continue
        ref = ImageRef(path=str(p), format=fmt.NAME, segments=tuple(segs), size=0)
        if fmt.NAME == "ewf":
            handle = open_ewf(ref)
            media = handle.get_media_size()
            try:  # libewf opens a cut or incomplete set happily; reading its ends tells
                handle.seek(0)
                handle.read(min(media, 65536))
                handle.seek(max(0, media - 512))
                handle.read(512)
            except TSK_ERRORS as exc:
                raise ImageError(f"{p}: EWF image unreadable (truncated, or a segment missing?): "
                                 f"{_oneline(exc)}") from exc
            finally:
                handle.close()
        elif fmt.NAME == "splitraw":
            media = sum(Path(s).stat().st_size for s in segs)
        else:
            media = size
        return ImageRef(path=str(p), format=fmt.NAME, segments=tuple(segs), size=media)
    raise ImageError(f"{p}: format not recognised")  # unreachable: raw accepts everything


_local = threading.local()


def open_image(ref: ImageRef) -> pytsk3.Img_Info:
    """The TSK image for ``ref``, opened once per worker thread and reused."""
    cache: dict[ImageRef, pytsk3.Img_Info] = _local.__dict__.setdefault("images", {})
    img = cache.get(ref)
    if img is None:
        try:
            img = FORMATS[ref.format].open(localize(ref))  # this worker's path, its copy checked (pathmap)
        except OSError as exc:
            raise ImageError(f"{ref.path}: cannot be opened: {_oneline(exc)}") from exc
        cache[ref] = img
    return img


def iter_media(ref: ImageRef, chunk: int = 4 << 20) -> Iterator[bytes | memoryview]:
    """The image's media bytes in order (for the image hash), streamed in bounded chunks.

    A yielded chunk is only valid until the next one is asked for (the buffer is reused).
    """
    ref = localize(ref)  # this worker's path, its copy checked (triage.workers.pathmap)
    if ref.format == "ewf":
        handle = open_ewf(ref)
        try:
            while data := handle.read(chunk):
                yield data
        finally:
            handle.close()
        return
    buf = bytearray(chunk)  # one buffer reused: no 4 MiB allocation per read
    view = memoryview(buf)
    for seg in ref.segments:
        with open(seg, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                yield view[:n]
