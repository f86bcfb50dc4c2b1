"""Import and remove known-item hash sets: parse, check, compile, then swap in atomically.

An import reads its source once into a :class:`~triage.rules.spill.Spill` in
``<home>/hashsets/.tmp/``, compiles the indexes there, then — holding the
catalog lock — renames the finished folder to ``<home>/hashsets/<set>/<id>``
and repoints the catalog row in one transaction. A crash at any point before
that commit leaves the previous index and catalog exactly as they were.

Importing into an existing set adds to it (NSRL 2.x came in several
``NSRLFile.txt`` parts); ``replace=True`` rebuilds it from this source alone.
Importing a source (same SHA-256) already in the set is a no-op.

Malformed records are skipped and counted. The import fails, changing
nothing, when more than :data:`MAX_MALFORMED_RATIO` (1%) of the records are
malformed, or when any is and the source has fewer than :data:`SMALL_SOURCE`
(100) records: in a short file one bad line more likely means the wrong file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from triage.rules import catalog
from triage.rules.builder import build, merge_previous
from triage.rules.catalog import CATEGORIES, SetRecord, SourceRecord
from triage.rules.errors import HashSetFormatError, InputError
from triage.rules.formats import Entry, detect_format, get_format, read_head
from triage.rules.home import hashsets_dir
from triage.rules.imagedir import ImageFolder
from triage.rules.spill import Spill

log = logging.getLogger(__name__)

#: an import fails when more than this share of its records is malformed
MAX_MALFORMED_RATIO = 0.01
#: below this many records, any malformed record fails the import
SMALL_SOURCE = 100
#: set names: safe as folder names, no path tricks
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PROGRESS_EVERY = 100_000
_STALE_TMP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ImportReport:
    """What one import did: counts for the examiner and the ``--json`` output."""

    name: str
    category: str
    format: str
    source: str
    source_sha256: str
    imported_at: str
    noop: bool = False
    records: int = 0
    malformed: int = 0
    examples: tuple[str, ...] = ()
    added: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


def check_name(name: str) -> str:
    """A set name becomes a folder name and a reference-id prefix: no separators, no ':'."""
    if not NAME_PATTERN.match(name):
        raise InputError(
            f"bad hash-set name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise InputError(f"bad category {category!r}: use one of {', '.join(CATEGORIES)}")
    return category


def list_hashsets(home: str | os.PathLike[str] | None = None) -> list[SetRecord]:
    """Every installed set with its sources (empty before the first import)."""
    return catalog.read_sets(hashsets_dir(home))


def remove_hashset(name: str, home: str | os.PathLike[str] | None = None) -> SetRecord:
    """Delete a set from the catalog, then its folder (readers holding maps keep them)."""
    root = hashsets_dir(home)
    if catalog.get_set(root, name) is None:
        names = ", ".join(s.name for s in catalog.read_sets(root))
        raise InputError(f"no hash set named {name!r} ({'installed: ' + names if names else 'none installed'})")
    with catalog.writer(root) as con:
        record = catalog.get_set(root, name, con)
        if record is None:
            raise InputError(f"no hash set named {name!r}")
        catalog.delete_set(con, name)
    shutil.rmtree(root / name, ignore_errors=True)
    return record


def import_hashset(
    source: str | os.PathLike[str],
    name: str,
    category: str,
    fmt: str = "auto",
    home: str | os.PathLike[str] | None = None,
    replace: bool = False,
    max_pixels: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a hash-set file (any registered format) or a folder of reference images."""
    check_name(name)
    check_category(category)
    path = Path(source).expanduser().absolute()
    root = hashsets_dir(home)
    existing = catalog.get_set(root, name)
    _check_existing(existing, name, category, replace)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if path.is_dir():
        if fmt not in ("auto", "images"):
            raise HashSetFormatError(f"{path}: a folder is read as reference images, not as {fmt!r}")
        folder = ImageFolder(path, max_pixels)
        entries: Iterable[Entry] = folder.iter_entries()
        fmt_name, unit, digest = "images", "file", ""
    elif path.exists():
        head = read_head(path)
        if not head:
            raise HashSetFormatError(f"{path}: empty file, no hash set in it")
        parser = detect_format(path, head) if fmt == "auto" else get_format(fmt)
        fmt_name, unit, digest = parser.NAME, parser.UNIT, _sha256(path)
        if _is_noop(existing, digest, replace):
            return _noop(existing, path, digest, fmt_name, now)  # type: ignore[arg-type]
        entries = _entries(parser, path)
    else:
        raise HashSetFormatError(f"{path}: no such file or folder")
    tmp_parent = root / ".tmp"
    tmp_parent.mkdir(parents=True, exist_ok=True)
    _sweep(tmp_parent)
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=tmp_parent))
    spill = Spill(tmp, unit)
    try:
        base = None if (replace or existing is None) else root / existing.directory
        if base is not None:
            merge_previous(spill, base)
        _read(entries, spill, path, progress)
        spill.close()
        _check_errors(path, spill, folder.skipped if fmt_name == "images" else [])
        if fmt_name == "images":
            digest = folder.digest()
            if _is_noop(existing, digest, replace):
                return _noop(existing, path, digest, fmt_name, now)  # type: ignore[arg-type]
        out = tmp / "index"
        out.mkdir()
        counts, entry_categories = build(spill, out, now)
        added = {k: v for k, v in spill.counts.items() if v}
        src = SourceRecord(digest, str(path), fmt_name, now, spill.records, spill.malformed, added)
        install_index(root, name, category, out, src, counts, entry_categories, replace=replace, expected=existing)
        skipped = tuple(folder.skipped) if fmt_name == "images" else ()
        return ImportReport(name, category, fmt_name, str(path), digest, now, False, spill.records,
                            spill.malformed, tuple(spill.examples), added, counts, skipped)
    finally:
        spill.close()
        shutil.rmtree(tmp, ignore_errors=True)


def install_index(
    root: Path, name: str, category: str, folder: Path, source: SourceRecord, counts: dict[str, int],
    entry_categories: bool, replace: bool = False, expected: SetRecord | None = None,
) -> SetRecord:
    """Move a built index folder into place and point set ``name`` at it, atomically.

    ``expected`` is the set as it was when the build started (None: it did not
    exist); if another import changed it meanwhile, nothing is installed.
    """
    with catalog.writer(root) as con:
        current = catalog.get_set(root, name, con)
        if (current.directory if current else None) != (expected.directory if expected else None):
            raise InputError(f"hash set {name!r} changed during this import; run it again")
        rel = f"{name}/{uuid.uuid4().hex[:16]}"
        (root / name).mkdir(exist_ok=True)
        os.rename(folder, root / rel)
        created = current.created_at if current else source.imported_at
        record = SetRecord(name, category, rel, counts, entry_categories, created, source.imported_at)
        catalog.save_set(con, record, source, replace_sources=replace)
        _remove_other_generations(root / name, keep=rel)
    return record


def _entries(parser: object, path: Path) -> Iterable[Entry]:
    with open(path, "rb") as fh:
        yield from parser.iter_entries(fh)  # type: ignore[attr-defined]


def _read(entries: Iterable[Entry], spill: Spill, path: Path, progress: Callable[[int], None] | None) -> None:
    try:
        for entry in entries:
            spill.add(entry)
            if progress is not None and spill.records % _PROGRESS_EVERY == 0:
                progress(spill.records)
    except OSError as exc:
        raise HashSetFormatError(f"{path}: read error: {exc.strerror or exc}") from exc
    if progress is not None:
        progress(spill.records)


def _check_existing(existing: SetRecord | None, name: str, category: str, replace: bool) -> None:
    if existing is not None and not replace and existing.category != category:
        raise InputError(
            f"hash set {name!r} is {existing.category}, not {category}: import with --category "
            f"{existing.category}, or use --replace to rebuild it"
        )


def _is_noop(existing: SetRecord | None, digest: str, replace: bool) -> bool:
    if existing is None:
        return False
    shas = {s.sha256 for s in existing.sources}
    return shas == {digest} if replace else digest in shas


def _noop(existing: SetRecord, path: Path, digest: str, fmt_name: str, now: str) -> ImportReport:
    log.info("hash set %s already holds %s", existing.name, path)
    return ImportReport(
        existing.name, existing.category, fmt_name, str(path), digest, now, noop=True, counts=existing.counts
    )


def _check_errors(path: Path, spill: Spill, skipped: list[str]) -> None:
    bad, total, unit = spill.malformed, spill.records, spill.unit
    if bad and (total < SMALL_SOURCE or bad > MAX_MALFORMED_RATIO * total):
        limit = "any" if total < SMALL_SOURCE else f"over {MAX_MALFORMED_RATIO:.0%}"
        raise HashSetFormatError(
            f"{path}: {bad} of {total} {unit}s malformed ({limit} fails the import), nothing imported; "
            + "; ".join(spill.examples)
        )
    if total - bad == 0:
        why = f" ({len(skipped)} files skipped: {'; '.join(skipped[:3])})" if skipped else ""
        raise HashSetFormatError(f"{path}: no hashes found{why}")
    if bad:
        log.warning("%s: skipped %d malformed %ss: %s", path, bad, unit, "; ".join(spill.examples))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise HashSetFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _remove_other_generations(set_folder: Path, keep: str) -> None:
    """Old index folders of this set (and any left by a crash); called under the catalog lock."""
    for child in set_folder.iterdir():
        if f"{set_folder.name}/{child.name}" != keep:
            shutil.rmtree(child, ignore_errors=True)


def _sweep(tmp_parent: Path) -> None:
    """Remove build folders abandoned by crashed imports (older than a day)."""
    cutoff = time.time() - _STALE_TMP_SECONDS
    for child in tmp_parent.iterdir():
        try:
            if child.stat().st_mtime < cutoff:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            continue
