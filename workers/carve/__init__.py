"""Carving: find whole, structurally valid objects in raw bytes (unallocated space, images).

Pure layer, no Dask and no pytsk3: everything reads through a
:class:`~triage.workers.carve.reader.Reader`. Carvers are one module per object
type, registered with ``@carver`` in :mod:`triage.workers.carve.registry` and
discovered on first use; :func:`~triage.workers.carve.scanner.scan` runs them
over one chunk of an extent.
"""

from triage.workers.carve.reader import BytesReader, FileReader, Reader
from triage.workers.carve.registry import (
    CARVERS,
    Carver,
    DuplicateCarverError,
    Match,
    UnknownCarverError,
    carver,
)
from triage.workers.carve.scanner import Carved, iter_scan, scan
from triage.workers.carve.spancache import SpanCache

__all__ = [
    "CARVERS",
    "BytesReader",
    "Carved",
    "Carver",
    "DuplicateCarverError",
    "FileReader",
    "Match",
    "Reader",
    "SpanCache",
    "UnknownCarverError",
    "carver",
    "iter_scan",
    "scan",
]
