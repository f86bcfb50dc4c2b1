"""The ``triage`` command line: a verb registry, one module per verb.

Each verb module defines ``register(subparsers) -> None``, which adds its parser
and sets ``func`` (``func(args) -> int`` returns the exit code). ``TriageError``
is caught here only: one line on stderr and the error's documented exit code;
``--debug`` shows the traceback instead.

Exit codes: 0 done; 1 internal error; 2 usage error; 3 bad input, nothing
triaged (missing/unreadable/unsupported image, bad hash set, unusable OUT);
4 triaged, but some partitions or files could not be read (see the summary);
5 no cluster; 6 an E01's stored acquisition hash does not match its content;
7 the audit log fails verification, or a verb refused to act on a damaged log.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from triage import __version__
from triage.rules.errors import TriageError

#: verb modules under triage.cli, in the order `triage --help` lists them
VERBS = ["run", "demo", "submit", "serve", "status", "cancel", "retry", "prioritize", "results", "top", "rank", "report",
         "hashsets", "audit", "cluster", "dashboard"]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, just that verb's parser (the others are not imported).

    A verb module imports what its verb needs (``triage run`` the pipeline, Dask and
    the readers), so loading all of them made every ``triage status`` pay for
    ``triage run``'s imports; ``triage --help`` and a mistyped verb still load all.
    """
    parser = argparse.ArgumentParser(
        prog="triage",
        description="Triage seized device images on a Dask cluster: every file walked, hashed, typed and ranked.",
        epilog="Run 'triage VERB --help' for a verb's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"evidence-triage {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in [only] if only in VERBS else VERBS:
        try:
            module = importlib.import_module(f"triage.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"triage.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from triage.cluster.preload import without_pandas

    without_pandas()  # pyarrow would import it for nothing (triage.cluster.preload)
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)  # the top level has no option taking a value
    parser = build_parser(verb)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the verb
    args = parser.parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        # the cluster's own chatter (start-up, shutdown races) is not the examiner's business
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda r: not r.name.startswith("distributed") or r.levelno >= logging.CRITICAL)
    try:
        return int(args.func(args) or 0)
    except TriageError as exc:
        if args.debug:
            raise
        print(f"triage: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("triage: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `triage status --json | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
