"""``triage hashsets``: import, list and remove known-item hash sets.

The work is in :mod:`triage.rules.importer`; this module turns options into a
call and the result into one line (or JSON). Sets live under
``<home>/hashsets/`` where home is ``--home``, else ``$TRIAGE_HOME``, else
``$XDG_DATA_HOME/triage``, else ``~/.local/share/triage``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from triage import config
from triage.rules.catalog import CATEGORIES, SetRecord
from triage.rules.formats import iter_formats
from triage.rules.home import hashsets_dir
from triage.rules.importer import (
    MAX_MALFORMED_RATIO,
    SMALL_SOURCE,
    ImportReport,
    import_hashset,
    list_hashsets,
    remove_hashset,
)
from triage.rules.phashindex import DEFAULT_MAX_DISTANCE

EXAMPLES = f"""\
examples:
  triage hashsets import RDS_2024.03.1_modern_minimal.db --name nsrl --category known-good
  triage hashsets import vics-export.json --name vic --category known-bad
  triage hashsets import ./reference-pictures/ --name pictures --category notable
  triage hashsets list --json
  triage hashsets remove nsrl

Formats are detected from the file's first bytes; --format overrides. A folder is
read as reference pictures (phash of each, plus its MD5/SHA-1/SHA-256). Malformed
lines are skipped and reported; the import fails, changing nothing, when more than
{MAX_MALFORMED_RATIO:.0%} of them are malformed (or any, under {SMALL_SOURCE} lines).
Pictures match within a Hamming distance of {DEFAULT_MAX_DISTANCE} bits by default.
"""


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", metavar="DIR", default=argparse.SUPPRESS,
        help="state directory (default: $TRIAGE_HOME, else $XDG_DATA_HOME/triage, else ~/.local/share/triage)",
    )
    raw = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser(
        "hashsets", parents=[common], formatter_class=raw, epilog=EXAMPLES,
        help="manage known-item hash sets (NSRL, Project VIC, hash lists, reference pictures)",
        description="Import, list and remove the known-good / known-bad / notable sets files are matched against.",
    )
    actions = parser.add_subparsers(dest="hashsets_action", metavar="ACTION", required=True)

    formats = "\n".join(f"  {f.NAME:<11} {f.DESCRIPTION}" for f in iter_formats())
    imp = actions.add_parser(
        "import", parents=[common], formatter_class=raw,
        help="import a hash-set file or a folder of reference pictures",
        description="Import FILE (any format below) or a folder of reference pictures into set NAME.\n"
        "Importing into an existing set adds to it; the same file twice is a no-op.",
        epilog=f"formats (auto-detected):\n{formats}\n  {'images':<11} a folder of reference pictures\n\n{EXAMPLES}",
    )
    imp.add_argument("source", metavar="FILE|DIR", help="hash-set file, or folder of reference pictures")
    imp.add_argument("--name", required=True, help="set name (letters, digits, '.', '_', '-')")
    imp.add_argument("--category", required=True, choices=CATEGORIES, help="what a hit in this set means")
    imp.add_argument("--format", default="auto", metavar="FORMAT", help="auto (default), images, or a format below")
    imp.add_argument("--replace", action="store_true", help="rebuild the set from this source alone")
    imp.add_argument("--max-pixels", type=int, default=None, metavar="N", help="refuse pictures larger than N pixels (default: content.max-image-pixels, the limit evidence is hashed under)")
    imp.add_argument("--json", action="store_true", help="print the import report as JSON")
    imp.set_defaults(func=run_import)

    lst = actions.add_parser("list", parents=[common], help="list installed sets", epilog=EXAMPLES, formatter_class=raw)
    lst.add_argument("--json", action="store_true", help="print the sets as JSON")
    lst.set_defaults(func=run_list)

    rem = actions.add_parser("remove", parents=[common], help="remove a set", epilog=EXAMPLES, formatter_class=raw)
    rem.add_argument("name", metavar="NAME")
    rem.set_defaults(func=run_remove)


def _home(args: argparse.Namespace) -> str | None:
    return getattr(args, "home", None)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "empty"


def run_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from triage.audit import AuditLog

    audit = AuditLog.at(_home(args))
    audit.check_writable()
    with tqdm(unit=" records", disable=not sys.stderr.isatty(), leave=False) as bar:

        def progress(done: int) -> None:
            bar.update(done - bar.n)

        report = import_hashset(
            args.source, args.name, args.category, fmt=args.format, home=_home(args),
            replace=args.replace, progress=progress,
            max_pixels=args.max_pixels if args.max_pixels is not None else int(config.get("content.max-image-pixels")),
        )
    if not report.noop:
        audit.append("hashset-import", details={
            "set": report.name, "category": report.category, "format": report.format, "source": report.source,
            "source_sha256": report.source_sha256, "entries": report.records - report.malformed,
            "malformed": report.malformed})
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(_describe(report))
    return 0


def _describe(r: ImportReport) -> str:
    if r.noop:
        return f"{r.name}: already holds {r.source} (sha256 {r.source_sha256[:16]}...), nothing to do"
    line = f"imported {r.source} into {r.name} ({r.category}, {r.format}): {r.records - r.malformed} entries"
    if r.malformed:
        line += f", {r.malformed} malformed skipped ({'; '.join(r.examples)})"
    if r.skipped:
        line += f", {len(r.skipped)} files not pictures skipped ({'; '.join(r.skipped[:3])})"
    return line + f"; set now holds {_counts(r.counts)}"


def run_list(args: argparse.Namespace) -> int:
    sets = list_hashsets(_home(args))
    if args.json:
        print(json.dumps([s.to_json() for s in sets], indent=2, sort_keys=True))
        return 0
    if not sets:
        print(f"no hash sets in {hashsets_dir(_home(args))}")
        return 0
    rows = [("NAME", "CATEGORY", "MD5", "SHA1", "SHA256", "PHASH", "SOURCES", "UPDATED (UTC)")]
    rows += [_row(s) for s in sets]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _row(s: SetRecord) -> tuple[str, ...]:
    c = s.counts
    return (s.name, s.category, *(str(c.get(a, 0)) for a in ("md5", "sha1", "sha256", "phash")),
            str(len(s.sources)), s.updated_at)


def run_remove(args: argparse.Namespace) -> int:
    from triage.audit import AuditLog

    audit = AuditLog.at(_home(args))
    audit.check_writable()
    record = remove_hashset(args.name, _home(args))
    audit.append("hashset-remove", details={"set": record.name, "category": record.category,
                                            "counts": record.counts})
    print(f"removed {record.name} ({record.category}: {_counts(record.counts)})")
    return 0
