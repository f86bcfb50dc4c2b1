"""QEMU QCOW (version 1) and QCOW2/3 images, including a chain of backing files, via libqcow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from triage.rules.errors import ImageError
from triage.workers.formats import image_format
from triage.workers.formats._chain import ChainFormat


@image_format
class QcowFormat(ChainFormat):
    NAME = "qcow"
    DESCRIPTION = "QEMU QCOW / QCOW2 (incl. backing files), via libqcow"

    def sniff(self, head: bytes, tail: bytes) -> bool:
        return head.startswith(b"QFI\xfb")

    def open_handle(self, path: Path) -> Any:
        import pyqcow

        h = pyqcow.file()
        h.open(str(path), "r")
        if h.is_locked():
            h.close()
            raise ImageError(f"{path}: QCOW image is encrypted (AES); no key given")
        return h

    def parent_name(self, handle: Any) -> str | None:
        return handle.backing_filename or None
