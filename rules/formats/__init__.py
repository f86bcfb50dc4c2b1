"""Hash-set file formats: one module per format, registered with ``@hashset_format``.

A format is a small class with ``NAME``, ``DESCRIPTION``, ``PRIORITY``,
``sniff(head, path) -> bool`` and ``iter_entries(fileobj) -> Iterator[Entry]``.
Adding one is a new module in this package and no edit elsewhere: every
non-underscore module here is imported the first time the registry is asked
(:class:`triage.rules.registry.Registry`, like every other plugin kind).

Formats only *find* hashes; they do not judge them. Each :class:`Entry` carries
the hex text as found, and :mod:`triage.rules.spill` checks lengths and digits
in one place, so a hash of the wrong length never reaches an index whatever
format it came from. A record a format cannot read at all is yielded as an
``Entry`` with ``error`` set, so the importer can count it with its line number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar, NamedTuple, Protocol, TypeVar

from triage.rules.errors import HashSetFormatError
from triage.rules.registry import Registry

#: bytes of the file start handed to ``sniff``
HEAD_SIZE = 64 * 1024


class Entry(NamedTuple):
    """One record of a hash-set file: hex digests as found, plus what the format knows.

    A NamedTuple rather than a frozen dataclass: immutable all the same, and about
    three times cheaper to build, which counts at tens of millions of lines.

    ``line`` is the 1-based line (or record) number used in error reports.
    ``category`` is a per-entry category when the format has one (Project VIC's
    ``Category``); the set's own category still decides known-bad/notable/known-good.
    ``phash`` is a 64-bit perceptual hash as 16 hex digits; ``name`` identifies the
    reference (a file name or a VICS MediaID) in perceptual match reports.
    """

    line: int
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    phash: str | None = None
    name: str | None = None
    category: int | None = None
    error: str | None = None


class HashSetFormat(Protocol):
    """What the registry expects of a format class (instantiated with no arguments)."""

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    #: lower sniffs first; specific formats (SQLite, NSRL header) before generic ones
    PRIORITY: ClassVar[int]
    #: what ``Entry.line`` counts in reports: "line" or "record"
    UNIT: ClassVar[str]

    def sniff(self, head: bytes, path: Path) -> bool: ...

    def iter_entries(self, fileobj: BinaryIO) -> Iterator[Entry]: ...


#: format name (and alias) -> class; filled by @hashset_format when a format module is imported.
#: The shared registry helper: a duplicate name is refused, an unknown one lists the known ones.
FORMATS: Registry[type[HashSetFormat]] = Registry("hash-set format", unknown=HashSetFormatError, package=__name__)

F = TypeVar("F", bound=type)


def hashset_format(name: str, aliases: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Class decorator registering a format under ``name`` (and ``aliases``, e.g. ``sha1sum``
    for ``md5sum``); the class states its name only here."""

    def register(cls: F) -> F:
        for key in (name, *aliases):  # all or nothing: a clash leaves no name registered
            if key in FORMATS:
                FORMATS.add(key, cls)  # raises DuplicateNameError naming both classes
        cls.NAME = name  # type: ignore[attr-defined]
        for key in (name, *aliases):
            FORMATS.add(key, cls)  # type: ignore[arg-type]
        return cls

    return register


def load_builtin_formats() -> dict[str, type[HashSetFormat]]:
    """Import every format module of this package (idempotent): canonical name -> class."""
    return {c.NAME: c for c in _classes()}


def _classes() -> list[type[HashSetFormat]]:
    """Each format class once (aliases dropped), in sniffing order."""
    unique = {id(c): c for c in FORMATS}
    return sorted(unique.values(), key=lambda c: (c.PRIORITY, c.NAME))


def known_names() -> list[str]:
    """Every name ``--format`` accepts, sorted (aliases included)."""
    return FORMATS.names()


def get_format(name: str) -> HashSetFormat:
    """An instance of the format called ``name``; an unknown name lists the known ones."""
    return FORMATS.get(name)()


def detect_format(path: Path, head: bytes) -> HashSetFormat:
    """The first format, by PRIORITY, whose ``sniff`` accepts ``head``."""
    if not head:
        raise HashSetFormatError(f"{path}: empty file, no hash set in it")
    for cls in _classes():
        fmt = cls()
        if fmt.sniff(head, path):
            return fmt
    raise HashSetFormatError(
        f"{path}: unknown hash-set format (known: {', '.join(sorted(c.NAME for c in _classes()))}); "
        "name one with --format"
    )


def read_head(path: Path) -> bytes:
    """The first :data:`HEAD_SIZE` bytes, with OSError turned into a one-line error."""
    try:
        with open(path, "rb") as fh:
            return fh.read(HEAD_SIZE)
    except OSError as exc:
        raise HashSetFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def iter_formats() -> Iterator[HashSetFormat]:
    """Instances of every registered format, in sniffing order (for ``--help`` and docs)."""
    for cls in _classes():
        yield cls()
