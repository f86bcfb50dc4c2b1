"""Random access over one extent of an image: the only way carvers see bytes.

Carvers never get a file object or the whole extent in memory: they ask for
``read(offset, size)`` with offsets relative to the extent, so the same carver
runs over a test ``bytes`` object, a raw image file, or (wrapped by the lead's
image layer) a pytsk3/pyewf handle. Reads are short only at the end of the
extent, which is how a carver learns an object is truncated.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from triage.rules.errors import ImageError

log = logging.getLogger(__name__)


@runtime_checkable
class Reader(Protocol):
    """Read-only random access over ``size`` bytes, offsets relative to the extent start."""

    size: int

    def read(self, offset: int, size: int) -> bytes:
        """Return ``size`` bytes at ``offset``, fewer only where the extent ends (``b""`` past it)."""
        ...


def _check_args(offset: int, size: int) -> None:
    # A negative offset or size is a carver bug, never a property of the evidence.
    if offset < 0 or size < 0:
        raise ValueError(f"read(offset={offset}, size={size}): offset and size must be >= 0")


class BytesReader:
    """A :class:`Reader` over bytes already in memory (tests, small buffers).

    Wraps the buffer in a ``memoryview`` so reads copy only what is asked for.
    """

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self.size = len(self._view)

    def read(self, offset: int, size: int) -> bytes:
        _check_args(offset, size)
        return bytes(self._view[offset : offset + size])

    def view(self, offset: int, size: int) -> memoryview:
        """:meth:`read` without the copy, for searches and checksums (see ``Cursor``)."""
        _check_args(offset, size)
        return self._view[offset : offset + size]

    def __repr__(self) -> str:
        return f"BytesReader(size={self.size})"


class FileReader:
    """A :class:`Reader` over ``length`` bytes of a file starting at ``base_offset``.

    Opened read-only and read with ``os.pread``, so one reader can be shared by
    threads of a Dask worker without a shared file position. ``length=None``
    means "to the end of the file".
    """

    def __init__(self, path: str | os.PathLike[str], base_offset: int = 0, length: int | None = None) -> None:
        self.path = Path(path)
        if base_offset < 0 or (length is not None and length < 0):
            raise ImageError(f"{self.path}: invalid extent (base_offset={base_offset}, length={length})")
        try:
            self._fd: int | None = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            file_size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise ImageError(f"{self.path}: cannot open for carving: {exc.strerror or exc}") from exc
        if length is None:
            length = max(0, file_size - base_offset)
        if base_offset + length > file_size:
            self.close()
            raise ImageError(
                f"{self.path}: extent {base_offset}+{length} ends past the end of the file ({file_size} bytes)"
            )
        self.base_offset = base_offset
        self.size = length

    def read(self, offset: int, size: int) -> bytes:
        _check_args(offset, size)
        if self._fd is None:
            raise ImageError(f"{self.path}: read after close")
        size = max(0, min(size, self.size - offset))
        if size == 0:
            return b""
        parts: list[bytes] = []
        pos = self.base_offset + offset
        try:
            while size > 0:  # pread may return less than asked on some filesystems
                part = os.pread(self._fd, size, pos)
                if not part:
                    break
                parts.append(part)
                pos += len(part)
                size -= len(part)
        except OSError as exc:
            raise ImageError(f"{self.path}: read failed at byte {pos}: {exc.strerror or exc}") from exc
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        # A forgotten close must not leak a descriptor per task on a long-lived worker.
        if getattr(self, "_fd", None) is not None:
            self.close()

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileReader({str(self.path)!r}, base_offset={self.base_offset}, length={self.size})"
