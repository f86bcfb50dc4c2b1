"""``triage run``: triage device images end to end on a Dask cluster."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING


from triage import config
from triage.audit import AuditLog
from triage.cli.cluster import tls_security
from triage.rules.errors import InputError, TriageError
from triage.store import out_dirs
from triage.workers.image import identify
from triage.workers.unlock import parse_key

if TYPE_CHECKING:
    from triage.pipeline import RunResult

EXAMPLE = """examples:
  triage run seized/laptop.E01 -o results/laptop
  triage run usb.001 phone.dd -o results/ --workers 4        # several images: one sub-directory each
  triage run disk.raw -o out --scheduler tcp://10.0.0.5:8786  # workers must see the image path too
  triage run laptop.E01 -o out --key 3=passphrase:'s3cret'     # unlock the LUKS/BitLocker partition 3
  triage run phone.tar -o results/phone                        # a phone extraction: .tar, .tar.gz, .zip, .ufdr
  triage run exports/phone-dump/ -o results/dump               # or a folder (links inside are never followed)
  triage run laptop.E01 -o out --no-vss                        # skip NTFS shadow copies (default: walked as vss:N)

resuming: an interrupted run (crash, Ctrl-C, lost cluster) leaves its finished tasks in OUT/.work;
the same command again continues from them and writes byte-identical tables. Checkpoints made
for another image, other options, another version or other known-item sets are discarded, never
mixed; --fresh discards them anyway. OUT/.work is removed once the results are complete.

exit codes: 0 done; 2 usage; 3 bad input, nothing triaged; 4 triaged, but some partitions
or files could not be read; 5 no cluster; 6 an E01's stored hash does not match its content."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="triage device images now and write the results",
                       description="Open each image (raw, split raw .001, E01, VMDK, VHD, VHDX, QCOW2, bare "
                       "filesystem; LVM2 logical volumes; APFS volumes; encrypted partitions reported, LUKS1/2 and "
                       "BitLocker unlocked "
                       "with --key; or a phone/logical extraction: a tar, tar.gz, zip, UFDR or folder of a device's "
                       "files, each member one row), walk every "
                       "partition's files incl. deleted and orphan ones, hash and type every file, and write "
                       "OUT/files.parquet, OUT/volumes.parquet, OUT/image.json and OUT/summary.json.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image file (for split raw or E01: the first segment), or an extraction: .tar, .tar.gz, "
                   ".zip, .ufdr or a folder")
    p.add_argument("-o", "--out", required=True, type=Path, help="output directory")
    add_cluster_options(p)
    p.add_argument("--home", default=None, metavar="DIR",
                   help="state directory whose known-item sets every file is checked against "
                   "(default: $TRIAGE_HOME or ~/.local/share/triage)")
    p.add_argument("--case", default=None, help="case reference recorded with the run in the audit log")
    add_carve_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace results already in OUT")
    p.add_argument("--fresh", action="store_true",
                   help="start over: discard the checkpoints an interrupted run left in OUT/.work "
                   "(by default the same command resumes from them)")
    add_key_options(p)
    add_vss_option(p)
    add_report_options(p)
    p.add_argument("--json", action="store_true", help="print the run summaries as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_report_options(p: argparse.ArgumentParser) -> None:
    """Ranking rules and the reports written after the run (issue 10)."""
    from triage.cli.rank import add_rule_options

    add_rule_options(p)
    p.add_argument("--no-reports", action="store_true",
                   help="write no reports (default: config reports.formats, i.e. report.html/.csv/.dfxml/.case.jsonld)")


def ranking_config(args: argparse.Namespace) -> dict:
    """--rules/--since as config overrides, read by the merge when it ranks."""
    out = {}
    if getattr(args, "rules", None):
        out["triage.ranking.rules"] = str(Path(args.rules).absolute())
    if getattr(args, "since", None):
        from triage.ranking import parse_since

        out["triage.ranking.since"] = parse_since(args.since).isoformat()
    return out


def write_run_reports(res: RunResult, args: argparse.Namespace) -> None:
    """The reports of a committed result; a failure is a warning, the results stand."""
    from triage.reports import WRITERS, existing_reports, write_reports

    formats = [] if args.no_reports else list(config.get("reports.formats") or [])
    for stale in set(existing_reports(res.out)) - set(formats):  # from results this run replaced (--overwrite)
        (res.out / WRITERS.get(stale).FILENAME).unlink(missing_ok=True)
    if not formats:
        return
    try:
        write_reports(res.out, formats, case=args.case)
    except TriageError as exc:
        print(f"triage: warning: {exc}", file=sys.stderr)


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", metavar="ADDR", default=None,
                   help="address of a running `dask scheduler` (default: start a local cluster)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local cluster (default: one per core)")


def add_carve_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--no-carve", dest="carve", action="store_const", const="none",
                   help="do not carve (default: carve unallocated space, space outside partitions, "
                   "and partitions with no recognised filesystem)")
    g.add_argument("--carve-all", dest="carve", action="store_const", const="all",
                   help="carve the whole image, allocated space included")
    p.add_argument("--extract-carved", action="store_true",
                   help="write carved objects to OUT/carved/<offset>.<type>")


def add_key_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", action="append", default=[], metavar="PARTITION=SECRET", type=key_arg,
                   help="unlock an encrypted partition (index as in volumes.parquet): PARTITION=passphrase:TEXT, "
                   "PARTITION=recovery:NNNNNN-... (BitLocker) or PARTITION=keyfile:PATH; repeatable. LUKS1/2 and "
                   "BitLocker are unlocked; keys are sent to the workers directly, never logged or audited")


def add_vss_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-vss", action="store_true",
                   help="do not walk NTFS Volume Shadow Copies (default: config vss.enabled; each snapshot's deleted "
                   "or changed files are rows with source vss:N)")


def vss_config(args: argparse.Namespace) -> dict:
    """--no-vss as the config override RunSettings reads when a run is planned."""
    return {"vss.enabled": False} if getattr(args, "no_vss", False) else {}


def key_arg(spec: str):
    """argparse type for --key: a usage error that never echoes the secret."""
    try:
        return parse_key(spec)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--key: ")) from None


def install_keys(client, images: list[str], keys: list) -> None:
    """Hand the keys to every worker (present and future) as a plugin: they never travel inside a task."""
    from triage.workers.keyring import Keyring

    if keys:
        client.register_plugin(Keyring({(str(Path(i)), idx): k for i in images for idx, k in keys}),
                               name=Keyring.name)


def cluster_settings(args: argparse.Namespace) -> dict:
    return {
        "scheduler": args.scheduler or config.get("cluster.scheduler"),
        "workers": args.workers if args.workers is not None else config.get("cluster.workers"),
        "threads_per_worker": int(config.get("cluster.threads-per-worker")),
        "memory_limit": config.get("cluster.memory-limit"),
        "security": tls_security(),  # cluster.tls.* configured: tls:// only, plain tcp:// refused
    }


def format_summary(res: RunResult) -> str:
    s = res.summary
    img, f = s["image"], s["files"]
    lines = [
        f"{img['path']}  ({img['format']}, {img['size']:,} bytes)",
        f"  image md5 {img['md5']}  sha256 {img['sha256']}",
    ]
    if img.get("ewf"):
        v = img["ewf"]["verified"]
        lines.append("  E01 stored hash: " + {True: "verified", False: "MISMATCH", None: "none stored"}[v])
    fss = ", ".join(f"{k}: {v or 'no filesystem'}" for k, v in s["filesystems"].items()) or "none"
    lines += [
        f"  partitions {s['partitions']}  walked: {fss}",
        f"  entries {f['entries']:,} (allocated {f['allocated']:,}, deleted {f['deleted']:,}, orphan {f['orphan']:,}, "
        f"carved {f['carved']:,}" + (f", members of the source {f['logical']:,}" if f.get("logical") else "")
        + (f", in archives found {f['archive_members']:,}" if f.get("archive_members") else "")
        + (f", only in shadow copies {f['vss']:,}" if f.get("vss") else "") + ")",
        f"  hashed {f['hashed']:,} files, {f['hashed_bytes']:,} bytes; images phashed {f['images_phashed']:,}; "
        f"extension mismatches {f['ext_mismatch']:,}; not fully read {f['unreadable']:,}",
        f"  known-bad {f['known_bad']:,}, notable {f['notable']:,}, known-good {f['known_good']:,}; "
        f"pictures near a reference image {f['phash_matches']:,}",
        f"  results in {res.out}/ (files.parquet, volumes.parquet, image.json, summary.json)  [{s['seconds']} s]",
    ]
    if s.get("ranking"):
        from triage.cli.rank import device_line

        lines.insert(-1, f"  {device_line(s['ranking'])}  (triage top {res.out})")
    lines += [f"  ! {p}" for p in res.problems]
    return "\n".join(lines)


def announce(event: str, data: dict) -> None:
    """Known-bad hits are printed the moment their rows are final (a file's when its task
    returns, a carved object's when carving is merged), not at the end."""
    if event != "known-bad":
        return
    how = (f"in {', '.join(data['sets'])}" if data["exact"]
           else f"near {data['phash_match']} (distance {data['phash_distance']})")
    path = data["path"].encode("unicode_escape").decode("ascii")  # no terminal control characters
    print(f"KNOWN-BAD  partition {data['partition']}  {path}  sha256 {data['sha256']}  {how}", flush=True)


class Progress:
    """A bytes progress bar on stderr, only when asked for and stderr is a terminal; a run's
    ``notify`` callback (it also prints the known-bad lines)."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=label, leave=False)

    def __call__(self, event: str, data: dict) -> None:
        announce(event, data)
        if event == "progress" and self.bar is not None:
            self.bar.total = data["bytes_total"]
            self.bar.n = data["bytes_done"]
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top: `triage submit` shares this module's options and must not pay
    # for the pipeline, Dask and the cluster at start-up
    import dask.config

    from triage.cluster.connect import connect
    from triage.cluster.evidence import publish
    from triage.pipeline import run_image

    dirs = out_dirs([str(i) for i in args.images], args.out)
    if len(args.images) == 1:
        identify(args.images[0])  # a wrong path fails in a second, before any cluster starts
    worst = 0
    results = []
    audit = AuditLog.at(args.home)
    audit.check_writable()  # refuse before any work if the chain of custody cannot be recorded
    with dask.config.set(ranking_config(args)):
        from triage.ranking import rules_in_force

        rules_in_force(args.rules, args.home)  # a broken rule file fails now, not after the whole run
    overrides = {**ranking_config(args), **{f"triage.{k}": v for k, v in vss_config(args).items()}}
    with connect(**cluster_settings(args)) as client, dask.config.set(overrides):
        install_keys(client, [str(i) for i in args.images], args.key)
        for image, out in zip(args.images, dirs):
            bar = Progress(not args.no_progress, Path(image).name)
            try:
                publish(client, [identify(image)])  # each worker checks its copy against this one (pathmap)
                res = run_image(image, out, client, overwrite=args.overwrite, carve=args.carve,
                                extract_carved=args.extract_carved, home=args.home, notify=bar,
                                resume=not args.fresh)
            except InputError as exc:
                if len(args.images) == 1:
                    raise
                print(f"triage: error: {exc}", file=sys.stderr)
                worst = max(worst, exc.exit_code)
                continue
            except TriageError:
                raise
            finally:
                bar.close()
            results.append(res)
            write_run_reports(res, args)
            worst = max(worst, res.exit_code)
            audit.append("run", case=args.case, image=res.image, image_hash=res.summary["image"]["sha256"],
                         details={"out": str(res.out), "exit_code": res.exit_code,
                                  "files": res.summary["files"]["entries"],
                                  "known_bad": res.summary["known_bad_hits"], **vss_config(args)})
            if args.json:
                continue
            print(format_summary(res))
            for p in res.problems:
                if "INTEGRITY" in p:
                    print(f"triage: WARNING: {p}", file=sys.stderr)
    if args.json:
        json.dump([{"out": str(r.out), **r.summary} for r in results], sys.stdout, indent=2, sort_keys=True)
        print()
    return worst
