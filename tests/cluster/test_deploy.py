"""The deploy files under cluster/deploy/: they parse, and the compose topology runs as real processes.

Docker is not available here, so the compose file's own commands are started on loopback: the
service names become 127.0.0.1 and the scheduler a free port; everything else (the worker and
dispatcher arguments, the evidence mounted read-only at the same path) is what the file says.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from triage_test_fixtures.backlog import jobs, submit, wait_for
from triage_test_fixtures.cli import triage_command

from .conftest import BIN, CORPUS, DaskProcs, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "cluster" / "deploy"


def test_every_deploy_file_parses_and_mounts_evidence_read_only():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"scheduler", "worker", "dispatcher", "dashboard"}
    for name in ("worker", "dispatcher"):
        mounts = [v for v in compose["services"][name]["volumes"] if v.split(":")[1] == "/cases"]
        assert mounts and all(v.endswith(":ro") for v in mounts), name
    assert compose["services"]["dashboard"]["command"][:2] == ["triage", "dashboard"]

    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"DaskCluster", "DaskAutoscaler", "Deployment"}
    worker = kinds["DaskCluster"]["spec"]["worker"]["spec"]
    assert worker["containers"][0]["args"][:2] == ["dask", "worker"]
    assert all(m["readOnly"] for m in worker["containers"][0]["volumeMounts"])
    assert kinds["Deployment"]["spec"]["replicas"] == 1  # one dispatcher holds the queue's lock

    jq = yaml.safe_load((DEPLOY / "slurm-jobqueue.yaml").read_text())["jobqueue"]["slurm"]
    assert jq["cores"] == 1 and jq["processes"] == 1
    tree = ast.parse((DEPLOY / "slurm_cluster.py").read_text())
    assert any(isinstance(n, ast.ImportFrom) and n.module == "dask_jobqueue" for n in ast.walk(tree))
    assert (DEPLOY / "Dockerfile").read_text().startswith("# ")


def _service_command(cmd: list[str], address: str, port: int, home: Path) -> list[str]:
    out = []
    for arg in cmd:
        arg = arg.replace("tcp://scheduler:8786", address).replace("0.0.0.0:8787", "127.0.0.1:0")
        out.append({"0.0.0.0": "127.0.0.1", "8786": str(port), "/state": str(home)}.get(arg, arg))
    if out[0] == "dask":
        return [str(BIN / "dask"), *out[1:]]
    return [*triage_command(), *out[1:]]


@pytest.mark.slow
def test_the_compose_topology_runs_a_submitted_job(tmp_path):
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    evidence = tmp_path / "cases"
    evidence.mkdir()
    image = evidence / "image.dd"
    image.write_bytes((CORPUS / "sleuthkit" / "image.dd").read_bytes())
    image.chmod(0o444)
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    home = tmp_path / "state"
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = DaskProcs(tmp_path)
    env = {"TRIAGE_HOME": str(home), **{k: str(v).replace("tcp://scheduler:8786", address)
                                         for k, v in compose["dispatcher"]["environment"].items()}}
    try:
        procs.scheduler = procs._popen(_service_command(compose["scheduler"]["command"], address, port, home),
                                       "scheduler.log", env)
        procs.address = address
        for i in range(compose["worker"]["deploy"]["replicas"]):
            procs._popen(_service_command(compose["worker"]["command"], address, port, home)
                         + ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0", "--name", f"w{i}"],
                         f"worker-w{i}.log", env)
        for i in range(compose["worker"]["deploy"]["replicas"]):
            procs.wait_for_worker(f"w{i}")
        home.mkdir()
        dispatcher = procs._popen(_service_command(compose["dispatcher"]["command"], address, port, home),
                                  "dispatcher.log", env)
        job = submit(home, image, "OP-COMPOSE", "X/1", "normal")
        done = wait_for("the job to finish", lambda: jobs(home)[job]["state"] in ("done", "failed") and jobs(home),
                        timeout=180, explain=lambda: procs.log("dispatcher.log"))
        assert done[job]["state"] == "done", done[job]
        assert "scheduler " + address in procs.log("dispatcher.log")
        dashboard = None
        probe = subprocess.run([*triage_command(), "dashboard", "--help"], capture_output=True, timeout=60)
        if probe.returncode == 0:  # the dashboard verb is built elsewhere; run it when it is there
            dashboard = procs._popen(_service_command(compose["dashboard"]["command"], address, port, home)
                                     [:-1] + [f"127.0.0.1:{free_port()}"], "dashboard.log", env)
            time.sleep(5)
            assert dashboard.poll() is None, procs.log("dashboard.log")
        dispatcher.send_signal(signal.SIGTERM)
        assert dispatcher.wait(timeout=60) == 0
    finally:
        procs.close()
    local = subprocess.run([*triage_command(), "run", image, "-o", tmp_path / "local", "--workers", "1"],
                           capture_output=True, text=True, timeout=180)
    assert local.returncode == 0, local.stderr
    result = Path(json.loads(json.dumps(done[job]))["results_dir"])
    assert (result / "files.parquet").read_bytes() == (tmp_path / "local" / "files.parquet").read_bytes()
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before
    assert os.stat(image).st_mode & 0o222 == 0
