"""``triage cluster status`` and ``retire`` against real scheduler and worker processes; mixed versions refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytsk3

import triage

from .conftest import CORPUS


def _shadow_triage(tmp: Path, version: str) -> dict[str, str]:
    """An environment whose ``import triage`` finds another evidence-triage version (an un-upgraded machine)."""
    pkg = tmp / "shadow" / "triage"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(f'__version__ = "{version}"\n')
    return {"PYTHONPATH": str(pkg.parent)}


def test_status_lists_every_worker_with_load_and_versions(module_cluster, cli):
    r = cli("cluster", "status", "--scheduler", module_cluster.address, "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["scheduler"] == module_cluster.address
    rows = {w["name"]: w for w in st["workers"]}
    assert set(rows) == {"a", "b"}
    for w in rows.values():
        assert w["host"] == "127.0.0.1" and w["threads"] == 1
        assert w["memory"] > 10 << 20  # a python process with distributed imported
        assert w["processing"] == 0 and w["executed"] is not None
        assert w["versions"]["evidence-triage"] == triage.__version__
        assert pytsk3.TSK_VERSION_STR in w["versions"]["pytsk3"]
        assert w["mismatch"] == []
    assert st["mixed"] == []
    text = cli("cluster", "status", "--scheduler", module_cluster.address)
    assert text.returncode == 0, text.stderr
    assert f"scheduler {module_cluster.address}: 2 worker(s), 2 thread(s)" in text.stdout
    assert text.stdout.count("127.0.0.1  1") == 2 and "MIXED" not in text.stdout


def test_mixed_cluster_is_named_and_refused_until_the_odd_worker_is_retired(module_cluster, cli, tmp_path):
    image = CORPUS / "sleuthkit" / "image.dd"
    module_cluster.start_worker("old", env=_shadow_triage(tmp_path, "0.0.1+old"))
    old = module_cluster.workers()["old"]["address"]

    st = cli("cluster", "status", "--scheduler", module_cluster.address)
    assert st.returncode == 5
    assert f"MIXED  {old} (127.0.0.1): evidence-triage 0.0.1+old (client {triage.__version__})" in st.stdout

    r = cli("run", image, "-o", tmp_path / "out", "--scheduler", module_cluster.address)
    assert r.returncode == 5
    err = r.stderr.strip()
    assert "\n" not in err and "mixed cluster" in err and old in err and "0.0.1+old" in err
    assert not (tmp_path / "out").exists()  # refused before anything ran

    gone = cli("cluster", "retire", "old", "--scheduler", module_cluster.address, "--json")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["retired"] == [old]
    assert "old" not in module_cluster.workers()
    events = json.loads(cli("cluster", "status", "--scheduler", module_cluster.address, "--json").stdout)["events"]
    seen = [(e["event"], e["workers"]) for e in events if old in e["workers"]]
    assert seen[0] == ("joined", [old]) and ("retired", [old]) in seen, events

    ok = cli("run", image, "-o", tmp_path / "out", "--scheduler", module_cluster.address)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out" / "summary.json").is_file()


def test_retire_an_unknown_worker_names_the_known_ones(module_cluster, cli):
    r = cli("cluster", "retire", "nosuch", "--scheduler", module_cluster.address)
    assert r.returncode == 5
    assert "no worker 'nosuch'" in r.stderr and module_cluster.workers()["a"]["address"] in r.stderr


def test_status_without_a_scheduler_is_one_line(cli):
    r = cli("cluster", "status", "--scheduler", "tcp://127.0.0.1:9")
    assert r.returncode == 5 and r.stderr.strip().count("\n") == 0 and "tcp://127.0.0.1:9" in r.stderr
