"""Microsoft VHD (fixed, dynamic, differential) and VHDX (same three), via libvhdi.

A differential disk records its parent's name and identifier; the parent found
beside it must carry that identifier, or the blocks read through it would be
another disk's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from triage.rules.errors import ImageError
from triage.workers.formats import image_format
from triage.workers.formats._chain import ChainFormat


class _Vhdi(ChainFormat):
    def open_handle(self, path: Path) -> Any:
        import pyvhdi

        h = pyvhdi.file()
        h.open(str(path), "r")
        return h

    def parent_name(self, handle: Any) -> str | None:
        return handle.parent_filename or None

    def check_parent(self, child: Any, parent: Any, child_path: Path, parent_path: Path) -> None:
        want, have = child.parent_identifier, parent.identifier
        if want and have and want != have:
            raise ImageError(f"{child_path}: parent {parent_path.name} has identifier {have}, "
                             f"the differential disk was made from {want}: not its parent")


@image_format
class VhdFormat(_Vhdi):
    NAME = "vhd"
    DESCRIPTION = "Microsoft VHD (fixed, dynamic, differential), via libvhdi"

    def sniff(self, head: bytes, tail: bytes) -> bool:
        # dynamic and differential disks copy the footer to the start; a fixed disk has only the footer
        return head.startswith(b"conectix") or tail.startswith(b"conectix")


@image_format
class VhdxFormat(_Vhdi):
    NAME = "vhdx"
    DESCRIPTION = "Microsoft VHDX (fixed, dynamic, differential), via libvhdi"

    def sniff(self, head: bytes, tail: bytes) -> bool:
        return head.startswith(b"vhdxfile")
