"""Start an adaptive SLURM cluster for the triage backlog (dask-jobqueue), then run the dispatcher on it.

    pip install dask-jobqueue
    python cluster/deploy/slurm_cluster.py --min 2 --max 64 --home /srv/triage/state

Settings come from ~/.config/dask/jobqueue.yaml (see slurm-jobqueue.yaml next to this file). The
scheduler runs here, on the login/service node; workers are SLURM jobs that join it, get tasks
within seconds, and are retired gracefully (their tasks handed back) when the backlog shrinks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def main() -> int:
    from dask_jobqueue import SLURMCluster

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--min", type=int, default=1, help="SLURM jobs kept even when the queue is empty")
    p.add_argument("--max", type=int, default=32, help="most SLURM jobs at once")
    p.add_argument("--home", required=True, help="the dispatcher's state directory")
    args = p.parse_args()
    cluster = SLURMCluster(scheduler_options={"dashboard_address": ":8787"})
    cluster.adapt(minimum_jobs=args.min, maximum_jobs=args.max, wait_count=10)
    print(f"scheduler {cluster.scheduler_address}; SLURM job script:\n{cluster.job_script()}", flush=True)
    try:
        return subprocess.call(["triage", "serve", "--scheduler", cluster.scheduler_address, "--home", args.home])
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
