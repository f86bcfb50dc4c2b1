"""The carver registry: a module-level dict filled by the :func:`carver` decorator.

Adding an object type is one new module in this package and no edit elsewhere:
the package's modules are imported with ``pkgutil`` the first time the registry
is asked for a carver, and each module's ``@carver(...)`` class registers itself.
A carver is a small stateless class (subclass of :class:`Carver`) with ``NAME``,
``DESCRIPTION``, ``EXTENSION``, ``MIME`` and ``carve(reader, start)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from triage.rules.errors import InputError, TriageError
from triage.rules.registry import DuplicateNameError, Registry
from triage.workers.carve.reader import Reader

log = logging.getLogger(__name__)

_PACKAGE = "triage.workers.carve"


class DuplicateCarverError(DuplicateNameError):
    """Two carver classes claim the same name: a packaging bug, reported at import."""


class UnknownCarverError(InputError):
    """A carver name (e.g. from ``--carvers``) that no module registers."""


@dataclass(frozen=True)
class Match:
    """What a carver found at a start offset: length and the type to report it as.

    Container carvers (ZIP) refine the type (``docx``, ``odt`` ...) from structure
    they already walked, which is why this is richer than the plain length.
    """

    length: int
    type: str
    extension: str
    mime: str


class Carver:
    """Base class of every carver. Stateless: one instance serves every thread.

    ``carve`` validates the structure of the object at ``start`` and returns its
    length, or None when the bytes there are not a complete valid object. It
    must raise nothing on arbitrary bytes and read at most ``MAX_SIZE`` bytes
    (use :class:`triage.workers.carve.stream.Cursor`).
    """

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    EXTENSION: ClassVar[str]
    MIME: ClassVar[str]
    HEADERS: ClassVar[tuple[bytes, ...]]
    MAX_SIZE: ClassVar[int]

    def carve(self, reader: Reader, start: int) -> int | None:
        raise NotImplementedError

    def match(self, reader: Reader, start: int) -> Match | None:
        """Length and reported type of the object at ``start``; what the scanner calls."""
        length = self.carve(reader, start)
        if length is None:
            return None
        return Match(length, self.NAME, self.EXTENSION, self.MIME)


#: every registered carver, by name; filled by @carver as this package's modules are imported
CARVERS: Registry[Carver] = Registry("carver", unknown=UnknownCarverError, duplicate=DuplicateCarverError,
                                     package=_PACKAGE)

C = TypeVar("C", bound=type[Carver])


def carver(name: str, *, headers: Iterable[bytes], max_size: int) -> Callable[[C], C]:
    """Register the decorated :class:`Carver` subclass under ``name``.

    ``headers`` are the byte strings an object of this type starts with (the
    scanner searches for them); ``max_size`` caps the object size, and so every
    read the carver makes.
    """
    header_tuple = tuple(headers)
    if not isinstance(name, str) or not name:
        raise TriageError(f"carver name must be a non-empty str, not {name!r}")
    if not header_tuple or not all(isinstance(h, bytes) and h for h in header_tuple):
        raise TriageError(f"carver {name!r}: headers must be a non-empty list of non-empty bytes")
    if not isinstance(max_size, int) or max_size <= 0:
        raise TriageError(f"carver {name!r}: max_size must be an int > 0, not {max_size!r}")

    def register(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, Carver)):
            raise TriageError(f"carver {name!r}: {cls!r} must subclass triage.workers.carve.registry.Carver")
        missing = [a for a in ("DESCRIPTION", "EXTENSION", "MIME") if not isinstance(getattr(cls, a, None), str)]
        if missing:
            raise TriageError(f"carver {name!r}: {cls.__qualname__} lacks {', '.join(missing)}")
        cls.NAME = name
        cls.HEADERS = header_tuple
        cls.MAX_SIZE = max_size
        CARVERS.add(name, cls())  # a name registered twice is refused, naming both classes
        return cls

    return register


def load() -> None:
    """Import every module of the package once, so each ``@carver`` has run."""
    CARVERS.load()


def names() -> list[str]:
    """Registered carver names, sorted."""
    return CARVERS.names()


def get(name: str) -> Carver:
    """The carver registered as ``name``; an unknown name lists the known ones."""
    return CARVERS.get(name)


def resolve(selection: Iterable[str] | None = None) -> list[Carver]:
    """Carvers for ``selection`` (all when None), deduplicated, in name order."""
    if selection is None:
        return [CARVERS.get(n) for n in names()]
    if isinstance(selection, str):
        selection = [selection]
    return [get(n) for n in sorted(set(selection))]
