"""A Cellebrite-style UFDR: a zip holding the extracted files and a report XML describing them.

Read as a zip (every member a row, ``report.xml`` among them, hashed like any
other file); only how it is recognised and named differs. The report's own view
of the files (original device paths, deleted flags) is not merged in this version.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from triage.workers.formats import image_format
from triage.workers.formats.zip import READ_ERRORS, ZipFormat, raw_name

#: report names a UFDR carries at its root (or one folder down)
REPORT_NAMES = (b"report.xml", b"ufdrreport.xml")


def report_member(path: Path) -> str | None:
    """The name of the zip's report XML, or None when it has none (a plain zip)."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = raw_name(info).lower()
                if name.rsplit(b"/", 1)[-1] in REPORT_NAMES and name.count(b"/") <= 1:
                    return info.orig_filename
    except READ_ERRORS:
        return None
    return None


@image_format
class UfdrFormat(ZipFormat):
    NAME = "ufdr"
    DESCRIPTION = "Cellebrite-style UFDR (zip with a report XML), read as a zip"
    VOLUME_SYSTEM = "ufdr"
    PRIORITY = 39  # before the plain zip, which would accept it

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        if super().segments(path, head, tail) is None:
            return None
        return [str(path)] if path.suffix.lower() == ".ufdr" or report_member(path) else None
