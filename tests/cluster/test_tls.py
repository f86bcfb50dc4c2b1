"""TLS on loopback with real processes: site certificates from ``triage cluster certs``, plain TCP refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import pytest

from .conftest import CORPUS, DaskProcs


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from triage_test_fixtures.cli import triage_command

    d = tmp_path_factory.mktemp("tls") / "site"
    r = subprocess.run([*triage_command(), "cluster", "certs", str(d), "--host", "127.0.0.1", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {k: __import__("pathlib").Path(v) for k, v in json.loads(r.stdout).items()}


@pytest.fixture(scope="module")
def tls_cluster(site, tmp_path_factory):
    procs = DaskProcs(tmp_path_factory.mktemp("tlscluster"), tls=site)
    try:
        procs.start_scheduler()
        procs.start_worker("secure")
        yield procs
    finally:
        procs.close()


def _env(site, role="client"):
    return {"DASK_TRIAGE__CLUSTER__TLS__CA_FILE": str(site["ca"]),
            "DASK_TRIAGE__CLUSTER__TLS__CERT": str(site[role]),
            "DASK_TRIAGE__CLUSTER__TLS__KEY": str(site[f"{role}-key"])}


def test_certs_chain_to_the_site_ca_and_keys_are_private(site, cli):
    for role in ("scheduler", "worker", "client"):
        v = subprocess.run(["openssl", "verify", "-CAfile", site["ca"], site[role]], capture_output=True, text=True)
        assert v.returncode == 0 and "OK" in v.stdout, v.stderr  # openssl as the oracle
        assert stat.S_IMODE(os.stat(site[f"{role}-key"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(site["ca-key"]).st_mode) == 0o600
    again = cli("cluster", "certs", site["ca"].parent)
    assert again.returncode == 3 and "never overwritten" in again.stderr


def test_tls_run_and_status_work_with_the_site_client_certificate(tls_cluster, site, cli, tmp_path):
    assert tls_cluster.address.startswith("tls://")
    st = cli("cluster", "status", "--scheduler", tls_cluster.address, "--json", env=_env(site))
    assert st.returncode == 0, st.stderr
    assert [w["name"] for w in json.loads(st.stdout)["workers"]] == ["secure"]
    image = CORPUS / "sleuthkit" / "image.dd"
    r = cli("run", image, "-o", tmp_path / "tls", "--scheduler", tls_cluster.address, env=_env(site))
    assert r.returncode == 0, r.stderr
    local = cli("run", image, "-o", tmp_path / "local", "--workers", "1")
    assert local.returncode == 0, local.stderr
    assert (tmp_path / "tls" / "files.parquet").read_bytes() == (tmp_path / "local" / "files.parquet").read_bytes()


def test_plain_tcp_clients_are_refused(tls_cluster, site, cli, tmp_path):
    image = CORPUS / "sleuthkit" / "image.dd"
    plain = tls_cluster.address.replace("tls://", "tcp://")
    # no certificates at all: the TLS scheduler does not speak plain TCP
    r = cli("run", image, "-o", tmp_path / "a", "--scheduler", plain)
    assert r.returncode == 5 and r.stderr.strip().count("\n") == 0, r.stderr
    # certificates configured: this client itself refuses to send anything in the clear
    r = cli("run", image, "-o", tmp_path / "b", "--scheduler", plain, env=_env(site))
    assert r.returncode == 5 and "refusing to talk to a plain" in r.stderr, r.stderr
    # a tls:// address with no certificates configured is a one-line error, not a fall-back
    r = cli("cluster", "status", "--scheduler", tls_cluster.address)
    assert r.returncode == 5 and "needs certificates" in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_workers_without_a_site_certificate_cannot_join(tls_cluster, tmp_path):
    other = tmp_path / "other-site"
    from triage.cluster.certs import make_site

    foreign = make_site(other, ["127.0.0.1"])
    plain = tls_cluster.start_worker("plain", address=tls_cluster.address.replace("tls://", "tcp://"), wait=False)
    stranger = DaskProcs(tmp_path, tls=foreign)
    stranger.address = tls_cluster.address
    try:
        stranger.start_worker("stranger", wait=False)
        time.sleep(8)  # a certified worker joins in about two seconds
        assert set(tls_cluster.workers()) == {"secure"}
        assert plain.poll() is None or plain.returncode != 0
    finally:
        stranger.close()
