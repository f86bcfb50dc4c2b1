"""VMware VMDK: monolithic sparse or flat, split (2 GB extents), stream-optimised, and delta links, via libvmdk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from triage.rules.errors import ImageError
from triage.workers.formats import image_format, sibling
from triage.workers.formats._chain import ChainFormat

SIGNATURES = (b"KDMV", b"COWD", b"# Disk DescriptorFile")


@image_format
class VmdkFormat(ChainFormat):
    NAME = "vmdk"
    DESCRIPTION = "VMware VMDK (sparse, flat, split, stream-optimised, delta), via libvmdk"

    def sniff(self, head: bytes, tail: bytes) -> bool:
        return head.lstrip(b"\xef\xbb\xbf").startswith(SIGNATURES)

    def open_handle(self, path: Path) -> Any:
        import pyvmdk

        h = pyvmdk.handle()
        h.open(str(path), "r")
        try:
            h.open_extent_data_files()
        except (OSError, IOError):
            missing = [str(sibling(path, d.filename)) for d in h.extent_descriptors
                       if d.filename and not sibling(path, d.filename).is_file()]
            h.close()
            if missing:
                raise ImageError(f"{path}: VMDK extent file(s) missing: {', '.join(missing)}") from None
            raise
        return h

    def parent_name(self, handle: Any) -> str | None:
        return handle.parent_filename or None

    def extent_files(self, handle: Any, path: Path) -> list[Path]:
        return [sibling(path, d.filename) for d in handle.extent_descriptors if d.filename]

    def check_parent(self, child: Any, parent: Any, child_path: Path, parent_path: Path) -> None:
        want, have = child.parent_content_identifier, parent.content_identifier
        if want not in (None, 0xFFFFFFFF) and want != have:
            raise ImageError(f"{child_path}: parent {parent_path.name} has content id {have:08x}, "
                             f"the delta was made from {want:08x}: not its parent")
