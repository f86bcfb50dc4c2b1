"""``cluster.path-map``: workers that see the evidence elsewhere, and workers whose copy is not the dispatcher's.

Each worker is a real ``dask worker`` process whose own environment maps the dispatcher's
evidence folder to its copy; the oracle is the same image triaged on a LocalCluster.
"""

from __future__ import annotations

import json
import shutil

import dask.config
import pytest

from triage.rules.errors import ImageError
from triage.workers.pathmap import localize, map_path
from triage.workers.refs import ImageRef

from .conftest import CORPUS


def test_longest_prefix_on_whole_components():
    m = {"/cases": "/mnt/evidence", "/cases/OP-ROSE": "/srv/rose"}
    assert map_path("/cases/OP-ROSE/laptop.E01", m) == "/srv/rose/laptop.E01"
    assert map_path("/cases/OP-IRIS/usb.dd", m) == "/mnt/evidence/OP-IRIS/usb.dd"
    assert map_path("/cases2/usb.dd", m) == "/cases2/usb.dd"  # a prefix of the name, not of the path
    assert map_path("/other/usb.dd", m) == "/other/usb.dd"
    assert map_path("/cases", m) == "/mnt/evidence"


def test_outside_a_worker_a_missing_copy_names_the_host_and_path(tmp_path):
    ref = ImageRef(str(tmp_path / "d" / "x.dd"), "raw", (str(tmp_path / "d" / "x.dd"),), 512)
    with dask.config.set({"triage.cluster.path-map": {str(tmp_path / "d"): str(tmp_path / "w")}}):
        with pytest.raises(ImageError, match=r"host .*: .*/w/x\.dd: cannot see this image segment \(mapped from"):
            localize(ref)


def test_known_item_sets_folder_is_mapped_too(tmp_path):
    """The sets the dispatcher names by its state directory are opened at the worker's path for it."""
    from triage.rules.importer import import_hashset
    from dataclasses import replace

    from triage.workers.known import apply_known, snapshot

    home = tmp_path / "worker-copy"
    listing = tmp_path / "bad.md5"
    md5 = "0123456789abcdef0123456789abcdef"
    listing.write_text(f"{md5}  secret.jpg\n")
    import_hashset(listing, name="bad", category="known-bad", home=home)
    rows = {"md5": [md5], "sha1": [None], "sha256": ["00" * 32], "phash": [None]}
    dispatcher_home = "/srv/triage/state-as-the-dispatcher-sees-it"
    pinned = replace(snapshot(home, 10), home=dispatcher_home)  # the run's snapshot, named as the dispatcher has it
    with dask.config.set({"triage.cluster.path-map": {dispatcher_home: str(home)}}):
        apply_known(rows, pinned)
    assert rows["known"] == ["known-bad"] and rows["hashset_hits"] == [["bad"]]


@pytest.fixture
def evidence(tmp_path):
    """The dispatcher's folder and four worker views: an identical copy, another image of the same size,
    a truncated copy, and a folder without it."""
    src = CORPUS / "sleuthkit" / "image.dd"
    disp = tmp_path / "cases"
    disp.mkdir()
    shutil.copyfile(src, disp / "image.dd")
    views = {name: tmp_path / f"view-{name}" for name in ("good", "stale", "short", "blind")}
    for v in views.values():
        v.mkdir()
    shutil.copyfile(src, views["good"] / "image.dd")
    data = bytearray(src.read_bytes())
    data[100:104] = b"XXXX"  # same size, other first block
    (views["stale"] / "image.dd").write_bytes(bytes(data))
    (views["short"] / "image.dd").write_bytes(src.read_bytes()[:-4096])
    return disp, views


@pytest.mark.slow
def test_workers_map_the_path_and_refuse_a_copy_that_differs(dask_procs, evidence, tmp_path, cli):
    disp, views = evidence
    image = disp / "image.dd"
    local = cli("run", image, "-o", tmp_path / "local", "--workers", "1")
    assert local.returncode == 0, local.stderr
    dask_procs.start_scheduler()
    expected = {"stale": "copy differs from the dispatcher's: first 64 KiB hash differently",
                "short": "copy differs from the dispatcher's: segment sizes",
                "blind": "cannot see this image segment"}
    previous = None
    for name in ("good", "stale", "short", "blind"):
        env = {"DASK_TRIAGE__CLUSTER__PATH_MAP": json.dumps({str(disp): str(views[name])})}
        dask_procs.start_worker(name, env=env)
        if previous:
            assert cli("cluster", "retire", previous, "--scheduler", dask_procs.address).returncode == 0
        previous = name
        out = tmp_path / f"out-{name}"
        r = cli("run", image, "-o", out, "--scheduler", dask_procs.address)
        if name == "good":
            assert r.returncode == 0, r.stderr
            assert (out / "files.parquet").read_bytes() == (tmp_path / "local" / "files.parquet").read_bytes()
            continue
        seen = str(views[name] / "image.dd")
        err = r.stderr.strip()
        assert r.returncode == 3 and "\n" not in err, err
        assert f"worker {name} (" in err and seen in err and expected[name] in err, err
        assert f"mapped from {image}" in err
        assert not (out / "files.parquet").exists()  # a refusal, not a wrong table
