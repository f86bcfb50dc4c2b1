"""Containers recognised by their signature but not read by this version.

Without these the raw reader would accept them and the user would get a
confusing "no filesystem"; instead they get one line naming the format.
Each is one entry below: (name, where, offset, magic, what).
"""

from __future__ import annotations

from pathlib import Path

from triage.rules.errors import UnsupportedFormatError
from triage.workers.formats import ImageFormat, image_format
from triage.workers.refs import ImageRef

#: (registry name, 'head' or 'tail', offset, magic, what the user is told it is)
SIGNATURES = (
    ("dmg", "tail", 0, b"koly", "DMG (Apple UDIF)"),
    ("l01", "head", 0, b"LVF\x09\x0d\x0a\xff\x00", "EWF logical evidence (L01)"),
    ("lx01", "head", 0, b"LEF2\x0d\x0a\x81\x00", "EWF2 logical evidence (Lx01)"),
    ("vdi", "head", 0x40, b"\x7f\x10\xda\xbe", "VDI (VirtualBox)"),
    ("parallels", "head", 0, b"WithoutFreeSpace", "Parallels HDD"),
    ("parallels-ext", "head", 0, b"WithouFreSpacExt", "Parallels HDD"),
    ("aff", "head", 0, b"AFF10\r\n\x00", "AFF (Advanced Forensic Format)"),
)


class Unsupported(ImageFormat):
    """A recognised container: ``segments`` refuses it with the format's name."""

    PRIORITY = 0  # before raw, which would accept anything
    WHERE: str
    OFFSET: int
    MAGIC: bytes

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        buf = head if self.WHERE == "head" else tail
        if buf[self.OFFSET:self.OFFSET + len(self.MAGIC)] != self.MAGIC:
            return None
        raise UnsupportedFormatError(f"{path}: unsupported format: {self.DESCRIPTION} container "
                                     "(not readable in this version)")

    def open_media(self, ref: ImageRef):  # never reached: segments() refuses
        raise UnsupportedFormatError(f"{ref.path}: unsupported format: {self.DESCRIPTION}")


for _name, _where, _offset, _magic, _what in SIGNATURES:
    image_format(type(f"Unsupported_{_name.replace('-', '_')}", (Unsupported,), {
        "NAME": _name, "DESCRIPTION": _what, "WHERE": _where, "OFFSET": _offset, "MAGIC": _magic,
        "__module__": __name__}))
