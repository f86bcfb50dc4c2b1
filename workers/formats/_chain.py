"""What the virtual-disk formats share: a libyal handle, its extent files and its parent chain.

A differential VHD/VHDX, a VMDK delta or a QCOW2 overlay reads the blocks it
does not hold from a parent (backing) image. The parent is looked for beside the
child under the base name the child records (see :func:`sibling`), opened
read-only, and checked to be the same format; the whole chain's files are the
evidence (``segments``), child first. Every handle of the chain is closed with
the child's media.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from triage.rules.errors import ImageError
from triage.workers.formats import HandleMedia, ImageFormat, oneline, sibling
from triage.workers.refs import ImageRef

#: a chain longer than this is a loop or a hostile image, not a real snapshot tree
MAX_CHAIN = 32


class ChainFormat(ImageFormat):
    """A libyal-read container that may have extent files and a parent image."""

    def sniff(self, head: bytes, tail: bytes) -> bool:
        raise NotImplementedError

    def open_handle(self, path: Path) -> Any:
        """One file of the chain, opened read-only (with its extent files)."""
        raise NotImplementedError

    def parent_name(self, handle: Any) -> str | None:
        """The parent file name recorded in the child, or None for a base image."""
        raise NotImplementedError

    def extent_files(self, handle: Any, path: Path) -> list[Path]:
        """Files other than ``path`` that hold this link's data (VMDK extents)."""
        return []

    def check_parent(self, child: Any, parent: Any, child_path: Path, parent_path: Path) -> None:
        """Refuse a parent that is not the one the child was made from (where the format says)."""

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        if not self.sniff(head, tail):
            return None
        handles, files = self._open_chain(path)
        for h in handles:
            h.close()
        return [str(f) for f in files]

    def open_media(self, ref: ImageRef) -> HandleMedia:
        handles, _ = self._open_chain(Path(ref.path))
        return HandleMedia(handles[0], keep=tuple(handles[1:]))

    def _open(self, path: Path) -> Any:
        try:
            return self.open_handle(path)
        except (OSError, IOError) as exc:
            raise ImageError(f"{path}: {self.DESCRIPTION.split(' (')[0].split(',')[0]} image cannot be opened: {oneline(exc)}") from exc

    def _open_chain(self, path: Path) -> tuple[list[Any], list[Path]]:
        handles: list[Any] = []
        files: list[Path] = []
        try:
            current = path
            while True:
                h = self._open(current)
                handles.append(h)
                for f in [current, *self.extent_files(h, current)]:
                    if f not in files:
                        files.append(f)
                name = self.parent_name(h)
                if not name:
                    break
                parent = sibling(current, name)
                if not parent.is_file():
                    raise ImageError(f"{current}: its parent image {name!r} is not beside it ({parent}): "
                                     "a differential image cannot be read without its parent")
                if parent in files or len(handles) >= MAX_CHAIN:
                    raise ImageError(f"{current}: parent chain loops or is longer than {MAX_CHAIN} images")
                if not self.sniff(*_ends(parent)):
                    raise ImageError(f"{current}: its parent {parent.name} is not a {self.NAME} image")
                ph = self._open(parent)
                try:
                    self.check_parent(h, ph, current, parent)
                finally:
                    ph.close()
                current = parent
            for child, parent in zip(handles, handles[1:]):
                child.set_parent(parent)
        except BaseException:
            for h in handles:
                h.close()
            raise
        return handles, files


def _ends(path: Path) -> tuple[bytes, bytes]:
    with path.open("rb") as f:
        head = f.read(4096)
        size = f.seek(0, 2)
        f.seek(max(0, size - 512))
        return head, f.read(512)
