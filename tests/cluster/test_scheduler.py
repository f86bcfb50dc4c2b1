"""The same graph on real `dask scheduler` / `dask worker` processes, reached by address."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from triage_test_fixtures.shared import CORPUS

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    d = tmp_path_factory.mktemp("sched")
    sfile = d / "scheduler.json"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sfile)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    deadline = time.monotonic() + 60
    while not sfile.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(sfile.read_text())["address"]
    procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                   "--dashboard-address", "127.0.0.1:0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    from distributed import Client

    with Client(address, timeout="30s") as c:
        c.wait_for_workers(2, timeout=60)
    yield address
    for p in reversed(procs):
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=30)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "triage.cli.main", "run", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_run_on_a_running_scheduler_matches_the_local_cluster(scheduler, tmp_path):
    image = CORPUS / "sleuthkit" / "imageformat_mmls_1.E01"
    remote = _run(image, "-o", tmp_path / "remote", "--scheduler", scheduler)
    assert remote.returncode == 0, remote.stderr
    local = _run(image, "-o", tmp_path / "local", "--workers", "1")
    assert local.returncode == 0, local.stderr
    for name in ("files.parquet", "volumes.parquet"):
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert pq.read_table(tmp_path / "remote" / "files.parquet").num_rows == 68


def test_unreachable_scheduler_is_one_line_exit_5(tmp_path):
    image = CORPUS / "sleuthkit" / "image.dd"
    r = _run(image, "-o", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9")
    assert r.returncode == 5
    assert r.stderr.strip().count("\n") == 0 and "tcp://127.0.0.1:9" in r.stderr
    assert not (tmp_path / "out" / "files.parquet").exists()
