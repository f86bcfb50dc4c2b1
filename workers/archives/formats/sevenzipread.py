"""7z through py7zr, decoded in one pass straight into the members' sinks.

py7zr's own extraction API writes files or sanitises names (refusing ``..`` and
absolute names, which evidence must show as they are), so its worker is fed
pathlike sinks by member id instead (:class:`_SinkIO`): nothing is written and no
name is interpreted. Given a file object, py7zr decodes sequentially in this thread,
so a limit raised by a sink stops it at once. Solid blocks mean a member's bytes
come only after everything before it in its block: the pass is in archive order.

Encrypted: headers encrypted (nothing can be listed without the password) is an
archive status; content encrypted makes every member a row with status
``encrypted``. Times are the stored UTC FILETIMEs.
"""

from __future__ import annotations

import lzma
import zlib
from typing import Any, BinaryIO

from triage.workers.archives.base import (ARCHIVES, CHUNK, ArchiveFormat, ArchiveLimit, EncryptedArchive, Member,
                                          MemberError, Sink, Visit, text)
from triage.workers.zipmeta import filetime


def _errors() -> tuple[type[BaseException], ...]:
    import py7zr.exceptions as e

    return (e.ArchiveError, lzma.LZMAError, zlib.error, EOFError, OSError, ValueError, KeyError, IndexError,
            TypeError, NotImplementedError)


def _bounded_blocks() -> None:
    """Make py7zr decode at most :data:`CHUNK` bytes per step instead of up to 128 MB: a sink can
    then stop a bomb after a chunk, and memory per member stays one chunk. py7zr reads this
    through a module-level function on every member; its value only sizes buffers."""
    import py7zr.py7zr

    if getattr(py7zr.py7zr.get_memory_limit, "__name__", "") != "_chunk":
        def _chunk() -> int:
            return CHUNK

        py7zr.py7zr.get_memory_limit = _chunk


def _time(value: Any) -> int | None:
    return None if value is None else filetime(int(value))


def _io_class() -> type:
    from py7zr.io import MemIO, Py7zIO, WriterFactory

    class _SinkIO(Py7zIO):
        def __init__(self, sink: Sink) -> None:
            self.sink = sink
            self.n = 0

        def write(self, s: bytes | bytearray) -> int:
            self.sink.write(bytes(s))
            self.n += len(s)
            return len(s)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def seekable(self) -> bool:
            return False

        def flush(self) -> None:
            return None

        def size(self) -> int:
            return self.n

        def close(self) -> None:
            self.sink.close()

    class _Factory(WriterFactory):
        def __init__(self, sink: Sink) -> None:
            self.sink = sink

        def create(self, filename: str) -> Py7zIO:
            return _SinkIO(self.sink)

    return lambda key, sink: MemIO(key, _Factory(sink))


@ARCHIVES.register("7z", instance=True)
class SevenZipReader(ArchiveFormat):
    DESCRIPTION = "7-Zip archive (py7zr), decoded in one pass, nothing written"
    MIMES = frozenset({"application/x-7z-compressed"})

    def expand(self, f: BinaryIO, size: int, visit: Visit, max_members: int, name: str) -> None:
        import py7zr

        _bounded_blocks()
        f.seek(0)
        try:
            sz = py7zr.SevenZipFile(f, mode="r")
        except py7zr.PasswordRequired as exc:
            raise EncryptedArchive("encrypted: 7z headers encrypted, no password") from exc
        with sz:
            if len(sz.files) > max_members:
                raise ArchiveLimit(f"{len(sz.files)} members exceed archives.max-members {max_members}")
            encrypted = sz.needs_password()
            memio = _io_class()
            wanted = False
            for af in sz.files:
                props = af.file_properties() or {}
                kind = "d" if af.is_directory else ("l" if af.is_symlink else "r")
                m = Member(text(af.filename.encode("utf-8", "surrogatepass")).rstrip("/") or af.filename,
                           int(af.uncompressed or 0) if kind == "r" else 0, kind, encrypted and kind == "r",
                           None, _time(af.lastwritetime), _time(props.get("lastaccesstime")), None,
                           _time(props.get("creationtime")))
                sink = visit(m)
                if sink is not None:
                    sz.worker.register_filelike(af.id, memio(str(af.id), sink))
                    wanted = True
                else:
                    sz.worker.register_filelike(af.id, None)
            if not wanted:
                return
            try:
                sz.worker.extract(sz.fp, None, parallel=False)
            except ArchiveLimit:
                raise
            except py7zr.PasswordRequired as exc:
                raise EncryptedArchive("encrypted: 7z content, no password") from exc
            except _errors() as exc:
                raise MemberError(" ".join(f"{type(exc).__name__}: {exc}".split())) from exc
