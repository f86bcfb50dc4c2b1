"""Real ``dask scheduler`` / ``dask worker`` processes on loopback, started the way an operator does.

:class:`DaskProcs` starts a scheduler (plain or TLS) and workers (each with its nanny,
in its own session so a signal reaches exactly that worker and its nanny), finds the
worker process behind an address (for SIGKILL / SIGSTOP), and leaves nothing running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaskProcs:
    def __init__(self, work: Path, tls: dict[str, Path] | None = None) -> None:
        self.work = work
        self.tls = tls
        self.procs: list[subprocess.Popen[bytes]] = []
        self.address = ""
        self.port = 0
        self.scheduler: subprocess.Popen[bytes] | None = None

    def _tls_args(self, role: str) -> list[str]:
        if not self.tls:
            return []
        return ["--tls-ca-file", str(self.tls["ca"]), "--tls-cert", str(self.tls[role]),
                "--tls-key", str(self.tls[f"{role}-key"])]

    def _popen(self, args: list[str], log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = open(self.work / log, "ab")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
        out.close()
        self.procs.append(p)
        return p

    def start_scheduler(self, port: int | None = None, extra: list[str] | None = None,
                        env: dict[str, str] | None = None) -> str:
        """A scheduler on a fixed loopback port (so a restarted one has the same address)."""
        self.port = port or self.port or free_port()
        proto = "tls" if self.tls else "tcp"
        self.scheduler = self._popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                      str(self.port), "--protocol", proto, "--dashboard-address", "127.0.0.1:0",
                                      *self._tls_args("scheduler"), *(extra or [])], "scheduler.log", env)
        self.address = f"{proto}://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self.address
            if self.scheduler.poll() is not None:
                raise AssertionError(f"scheduler exited:\n{(self.work / 'scheduler.log').read_text()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError("scheduler did not listen within 60 s")

    def start_worker(self, name: str, *, nthreads: int = 1, memory_limit: str = "0", env: dict[str, str] | None = None,
                     extra: list[str] | None = None, role: str = "worker", address: str | None = None,
                     wait: bool = True) -> subprocess.Popen[bytes]:
        """``dask worker ADDR`` with its nanny; returns the nanny's process (its session's leader)."""
        p = self._popen([str(BIN / "dask"), "worker", address or self.address, "--name", name, "--nthreads",
                         str(nthreads), "--memory-limit", memory_limit, "--dashboard-address", "127.0.0.1:0",
                         "--host", "127.0.0.1", *self._tls_args(role), *(extra or [])], f"worker-{name}.log", env)
        if wait:
            self.wait_for_worker(name)
        return p

    def client(self, **kw: Any) -> Any:
        from distributed import Client

        security = None
        if self.tls:
            from distributed.security import Security

            security = Security(tls_ca_file=str(self.tls["ca"]), tls_client_cert=str(self.tls["client"]),
                                tls_client_key=str(self.tls["client-key"]), require_encryption=True)
        return Client(self.address, timeout="20s", security=security, **kw)

    def workers(self) -> dict[str, dict[str, Any]]:
        """name -> scheduler's worker info (with 'address'), read through a short-lived client."""
        with self.client() as c:
            return {str(w["name"]): {**w, "address": a} for a, w in c.scheduler_info(n_workers=-1)["workers"].items()}

    def wait_for_worker(self, name: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.workers()
            except (OSError, TimeoutError):
                got = {}
            if name in got:
                return got[name]["address"]
            time.sleep(0.3)
        raise AssertionError(f"worker {name} did not join within {timeout} s:\n"
                             + (self.work / f"worker-{name}.log").read_text()[-3000:])

    def worker_pid(self, nanny: subprocess.Popen[bytes]) -> int:
        """The worker process under a nanny (its only python child)."""
        import psutil

        kids = psutil.Process(nanny.pid).children(recursive=True)
        pids = [k.pid for k in kids if "python" in k.name().lower() or "dask" in " ".join(k.cmdline())]
        assert pids, "nanny has no worker process"
        return pids[-1]

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait(timeout=30)

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGCONT)
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)

    def log(self, name: str) -> str:
        try:
            return (self.work / name).read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@pytest.fixture
def dask_procs(tmp_path: Path) -> Iterator[DaskProcs]:
    procs = DaskProcs(tmp_path)
    try:
        yield procs
    finally:
        procs.close()


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskProcs]:
    """A scheduler and two named single-thread workers (a, b), shared by a module's tests."""
    procs = DaskProcs(tmp_path_factory.mktemp("cluster"))
    try:
        procs.start_scheduler()
        procs.start_worker("a")
        procs.start_worker("b")
        yield procs
    finally:
        procs.close()


def triage_cli(*args: object, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    from triage_test_fixtures.cli import triage_command

    return subprocess.run([*triage_command(), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.fixture
def cli() -> Any:
    return triage_cli


# ---------------------------------------------------------------- evidence for fault and scale runs

#: small content tasks, so a 32 MiB disk is cut into dozens of tasks and a fault lands mid-run
ENV = {"DASK_TRIAGE__CONTENT__BATCH_BYTES": "1MiB", "DASK_TRIAGE__CONTENT__BATCH_FILES": "20"}


@pytest.fixture(scope="session")
def fault_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    from triage_test_fixtures import mkfs

    missing = [t for t in ("mke2fs", "sfdisk") if shutil.which(t, path=mkfs.TOOL_ENV["PATH"]) is None]
    if missing:
        pytest.skip(f"tool(s) not installed: {', '.join(missing)}")
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="session")
def small_disk(fault_dir: Path) -> Path:
    """A 32 MiB MBR disk, one ext4 partition: ~390 files (60 photos), one 2 MiB file; about 10 s on 2 workers."""
    from triage_test_fixtures.backlog import build_busy_disk

    return build_busy_disk(fault_dir, 12, size_mib=32, pictures=60, others=300, big_mib=(2,))


@pytest.fixture(scope="session")
def small_reference(small_disk: Path, fault_dir: Path) -> Path:
    """The disk triaged undisturbed on a LocalCluster: the table every faulty run must reproduce byte for byte."""
    out = fault_dir / "reference"
    r = triage_cli("run", small_disk, "-o", out, "--workers", "2", "--no-progress", env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    return out
