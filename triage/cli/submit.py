"""``triage submit``: put device images in the backlog and return at once."""

from __future__ import annotations

import argparse
import sys

from triage.cli.jobs import EXIT_CODES, PRIORITY_CHOICES, add_home, add_json, open_audit, open_queue, print_json
from triage import jobopts
from triage.cli.run import add_vss_option, key_arg, vss_config
from triage.keystore import KeyStore
from triage.rules.home import state_dir

EXAMPLE = f"""examples:
  triage submit seized/laptop.E01 --case OP-2291 --exhibit JB/1 --priority high
  triage submit usb.001 --case OP-2291 --exhibit JB/2 --priority low --examiner "DC Shaw" --note "found in car"
  triage submit disk1.dd disk2.dd --case OP-2291 --exhibit JB/3   # one job for both disks of one exhibit
  triage submit phone.tar --case OP-2291 --exhibit JB/5 --priority high  # phone extraction: tar/tgz/zip/ufdr/folder
  triage submit laptop.dd --case OP-2291 --exhibit JB/4 --priority high --key 3=keyfile:/media/usb/luks.pass
  triage submit server.E01 --case OP-2291 --exhibit JB/6 --priority low --no-vss  # skip NTFS shadow copies

A --key is kept in <home>/keys/<job id>.keys (readable by you only), never in the queue,
the audit log or the results; the dispatcher hands it to its workers and wipes the file
when the job is done, failed or cancelled (a retried job needs --key again).

Each image is checked (exists, readable, recognised format) and the job id is printed.
Submitting the same images for the same case and exhibit while the first job is still
queued or running prints that job's id again instead of adding a second one.

{EXIT_CODES}"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="queue device images for triage and print the job id",
                       description="Validate the images and add one job to the queue; a dispatcher "
                       "triages queued jobs in priority order. Returns at once.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image file (split raw or E01: the first segment), or an extraction (.tar, .tar.gz, .zip, "
                   ".ufdr, folder)")
    p.add_argument("--case", required=True, help="case reference")
    p.add_argument("--exhibit", required=True, metavar="REF", help="exhibit reference of the device")
    p.add_argument("--priority", required=True, choices=PRIORITY_CHOICES)
    p.add_argument("--examiner", metavar="NAME", default=None, help="examiner responsible")
    p.add_argument("--note", metavar="TEXT", default=None, help="free text kept with the job")
    p.add_argument("--key", action="append", default=[], metavar="PARTITION=SECRET", type=key_arg,
                   help="unlock an encrypted partition (index as in volumes.parquet): PARTITION=passphrase:TEXT, "
                   "PARTITION=recovery:NNNNNN-... (BitLocker) or PARTITION=keyfile:PATH; repeatable. Prefer "
                   "keyfile: a passphrase on the command line shows in the process list and shell history")
    add_vss_option(p)
    add_home(p)
    add_json(p, "the job")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    log = open_audit(args)
    job = open_queue(args).submit(args.images, args.case, args.exhibit, args.priority,
                                  examiner=args.examiner, note=args.note)
    details = {"exhibit": job.exhibit, "priority": job.priority, "examiner": job.examiner, "note": job.note,
               "formats": list(job.image_formats), "sizes": list(job.image_sizes), "size": job.image_size}
    if job.existed:
        details["already_queued"] = True
    elif vss_config(args):
        jobopts.save(state_dir(args.home), job.id, vss_config(args))  # applied by the dispatcher (triage.jobopts)
        details.update(vss_config(args))
    if args.key:
        KeyStore(state_dir(args.home)).put(job.id, args.key)
        details["keys_for_partitions"] = sorted(i for i, _ in args.key)  # which, never what
    log.append_job("submit", job, details=details)
    if args.json:
        print_json({**job.to_dict(), "existed": job.existed})
    else:
        print(job.id)
    if job.existed:
        print(f"triage: {job.id} already {job.state} for case {job.case} exhibit {job.exhibit}; not added again",
              file=sys.stderr)
        if args.key and job.state == "running":
            print(f"triage: the keys are stored; {job.id} is already running and uses them only if it starts again",
                  file=sys.stderr)
    return 0
