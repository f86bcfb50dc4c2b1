"""``triage demo``: build the project's own sample device image and triage it."""

from __future__ import annotations

import argparse
from pathlib import Path

from triage.cli.run import Progress, add_cluster_options, cluster_settings, format_summary
from triage.cluster.connect import connect
from triage.demo import build_sample
from triage.pipeline import run_image

EXAMPLE = """example:
  triage demo                    # writes ./triage-demo/sample.dd and ./triage-demo/results/
  triage demo --dir /tmp/demo --workers 2"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate a small sample device image and triage it",
                       description="Generate a 40 MiB MBR disk image (two ext filesystems with pictures, "
                       "documents, a deleted file and a lying extension, plus a partition with no filesystem) "
                       "and triage it on a local Dask cluster.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=Path("triage-demo"), help="where to put the image and results")
    add_cluster_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    image = build_sample(args.dir / "sample.dd")
    print(f"sample image: {image}")
    with connect(**cluster_settings(args)) as client:
        bar = Progress(True, image.name)
        try:
            res = run_image(image, args.dir / "results", client, overwrite=True, notify=bar)
        finally:
            bar.close()
    print(format_summary(res))
    return 0 if res.exit_code == 4 and all("no filesystem recognised" in p for p in res.problems) else res.exit_code
