"""Image formats: the registry of evidence containers and the media layer they share.

Every container (raw, split raw, EWF, VMDK, VHD/VHDX, QCOW) is one small class in
its own module of this package, registered with :data:`FORMATS`. A format says
whether a file is its kind (``segments``: the files that make up the evidence, or
None), and how to open its *media stream*: the decoded device bytes that
volumes, filesystems and carving read (:class:`Media`). Everything else (measuring
the media, checking it opens, the TSK image object, the streamed image hash) is
done here once for every format, so ``identify`` never asks which format it holds.

Formats are tried in ``PRIORITY`` order (then name): recognised-but-unreadable
containers first, signature formats next, numbered split raw, and raw last since
it accepts any file.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pytsk3

from triage.rules.errors import ImageError
from triage.rules.registry import Registry
from triage.workers.refs import ImageRef

#: what pytsk3 raises: its own errors as OSError, and an exception from a Python-backed
#: image's read (pyewf, libyal, split raw) wrapped as RuntimeError
TSK_ERRORS = (OSError, RuntimeError)


def oneline(exc: BaseException) -> str:
    """One line of an exception, without pytsk3's source-location preamble or libyal's call stack."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "with error: " in text:
        text = text.rsplit("with error: ", 1)[1]
    text = re.sub(r"^\w+: \(tsk3\.cpp:\d+\) ", "", text)
    if re.match(r"py\w+_\w+: ", text):  # libyal: "pyX_open: unable to open. libX_deepest: reason. ..."
        sentences = [re.sub(r"^\w+: ", "", s) for s in text.split(". ")]
        text = (sentences[1] if len(sentences) > 1 else sentences[0]).rstrip(".")
    return text


class Media(Protocol):
    """The decoded device bytes of an image: random access, read-only, closable."""

    size: int

    def read(self, offset: int, size: int) -> bytes: ...
    def close(self) -> None: ...


class HandleMedia:
    """A libyal handle (pyewf, pyvmdk, pyvhdi, pyqcow, pyluksde ...) as :class:`Media`.

    One lock per handle: a positioned read is one call, but libyal builds without
    thread support share a cursor, and several TSK threads may read one image.
    ``keep`` holds objects the handle reads through (parent images, extent files)
    so they stay open as long as the handle and are closed with it.
    """

    def __init__(self, handle: Any, keep: tuple[Any, ...] = ()) -> None:
        self._handle = handle
        self._keep = keep
        self._lock = threading.Lock()
        self.size = int(handle.get_media_size() if hasattr(handle, "get_media_size") else handle.get_size())

    def read(self, offset: int, size: int) -> bytes:
        size = max(0, min(size, self.size - offset))
        if size == 0:
            return b""
        with self._lock:
            return self._handle.read_buffer_at_offset(size, offset)

    def close(self) -> None:
        with self._lock:
            for h in (self._handle, *self._keep):
                close = getattr(h, "close", None)  # a pyvslvm logical volume has none: its group owns it
                if close is None:
                    continue
                try:
                    close()
                except (OSError, IOError):  # already closed: nothing to release
                    pass


class RegionFile:
    """A byte range of an image as the file object libyal reads (read/seek/tell/get_size): a volume inside a partition."""

    def __init__(self, read: Callable[[int, int], bytes], offset: int, size: int) -> None:
        self._read, self._offset, self.size, self.pos = read, offset, size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        data = self._read(self._offset + self.pos, n) if n > 0 else b""
        self.pos += len(data)
        return data

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        self.pos = {os.SEEK_SET: pos, os.SEEK_CUR: self.pos + pos, os.SEEK_END: self.size + pos}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def get_size(self) -> int:
        return self.size

    def close(self) -> None:
        pass


class ImageFormat:
    """Base of every format. Stateless: one instance serves every thread.

    Subclasses set ``NAME``, ``DESCRIPTION`` and ``PRIORITY`` and implement
    ``segments`` and ``open_media``; ``open_tsk`` and ``iter_media`` have generic
    versions raw formats override for speed.
    """

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    PRIORITY: ClassVar[int] = 10
    #: the files are the media stream byte for byte (raw, split raw): no separate container hash
    MEDIA_IS_FILES: ClassVar[bool] = False
    #: a logical source (archive or folder of a device's files, see ``_logical``), not a disk image
    LOGICAL: ClassVar[bool] = False
    #: ``identify`` offers it directories (a folder source); other formats only ever see files
    DIRECTORY: ClassVar[bool] = False

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        """Every file the evidence consists of (first one first), or None when ``path`` is not this format.

        ``head`` is the file's first 4 KiB, ``tail`` its last 512 bytes.
        """
        raise NotImplementedError

    def open_media(self, ref: ImageRef) -> Media:
        raise NotImplementedError

    def measure(self, ref: ImageRef) -> int:
        """The media size, after checking both ends of the stream read: a format library may
        open a cut or incomplete set happily, and the user must hear of it before the run."""
        media = self.open_media(ref)
        try:
            media.read(0, min(media.size, 65536))
            media.read(max(0, media.size - 512), 512)
            return media.size
        except TSK_ERRORS as exc:
            raise ImageError(f"{ref.path}: {self.NAME.upper()} image unreadable (truncated, or a segment "
                             f"missing?): {oneline(exc)}") from exc
        finally:
            media.close()

    def open_tsk(self, ref: ImageRef) -> pytsk3.Img_Info:
        return PyImg(self.open_media(ref))

    def iter_media(self, ref: ImageRef, chunk: int) -> Iterator[bytes | memoryview]:
        media = self.open_media(ref)
        try:
            for offset in range(0, media.size, chunk):
                data = media.read(offset, chunk)
                if not data:
                    raise ImageError(f"{ref.path}: media stream ends early at byte {offset}")
                yield data
        finally:
            media.close()


class PyImg(pytsk3.Img_Info):
    """A TSK image whose bytes come from a :class:`Media`; ``release`` closes it."""

    def __init__(self, media: Media) -> None:
        self._media = media
        self._size = media.size
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def read(self, offset: int, size: int) -> bytes:  # called by TSK
        return self._media.read(offset, size)

    def get_size(self) -> int:
        return self._size

    def close(self) -> None:  # TSK calls this on its own schedule; the handle cache calls release()
        pass

    def release(self) -> None:
        self._media.close()


#: every image format, by name; modules of this package register themselves when first asked
FORMATS: Registry[ImageFormat] = Registry("image format", unknown=ImageError, package=__name__)


def image_format(cls: type) -> type:
    """Register one instance of an :class:`ImageFormat` subclass under its ``NAME``."""
    return FORMATS.register(instance=True)(cls)


def ordered() -> list[ImageFormat]:
    """Formats in the order ``identify`` tries them."""
    return sorted(FORMATS, key=lambda f: (f.PRIORITY, f.NAME))


def sibling(path: Path, name: str) -> Path:
    """A file named inside a container (parent disk, extent, backing file), looked for beside it.

    Only the base name is used: a Windows or absolute path recorded at acquisition
    time names the examiner's copy, which sits beside the evidence here.
    """
    base = re.split(r"[\\/]", name.strip())[-1]
    return path.with_name(base)
