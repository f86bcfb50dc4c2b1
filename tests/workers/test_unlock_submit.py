"""``triage submit --key``: the key reaches the serving workers (the LUKS partition is walked) yet is never in the
queue database, the audit log, logs, checkpoints, results or reports; its store file is owner-only and wiped when
the job ends, or when the job was cancelled before it ever started."""

from __future__ import annotations

import json
import logging
import shutil
import stat
from pathlib import Path

import pytest

from triage.dispatcher import Dispatcher
from triage.keystore import KeyStore
from triage.queue import Queue
from triage_test_fixtures.encrypted import PASSPHRASE, build_luks_disk
from triage_test_fixtures.results import read_parquet

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="no cryptsetup")]


def _everything(root: Path) -> bytes:
    return b"".join(f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file())


def test_a_submitted_key_unlocks_on_the_dispatcher_and_is_never_written(tmp_path, client, triage_cli, caplog):
    disk = build_luks_disk(tmp_path / "img", "luks1")
    part = disk.partitions["luks"]
    home = tmp_path / "home"
    secret = PASSPHRASE.encode()
    sub = triage_cli("submit", disk.path, "--case", "ENC-9", "--exhibit", "A", "--priority", "high", "--json",
                     "--key", f"{part}=passphrase:{PASSPHRASE}", "--home", home, cluster=False)
    assert sub.returncode == 0, sub.stderr
    job_id = json.loads(sub.stdout)["id"]
    later = triage_cli("submit", disk.path, "--case", "ENC-9", "--exhibit", "B", "--priority", "low", "--json",
                       "--key", f"{part}=passphrase:{PASSPHRASE}", "--home", home, cluster=False)
    cancelled = json.loads(later.stdout)["id"]
    assert triage_cli("cancel", cancelled, "--home", home, cluster=False).returncode == 0

    store = KeyStore(home)
    assert store.job_ids() == sorted([job_id, cancelled])
    key_file = store.dir / f"{job_id}.keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and stat.S_IMODE(store.dir.stat().st_mode) == 0o700
    outside_store = b"".join(f.read_bytes() for f in home.rglob("*") if f.is_file() and store.dir not in f.parents)
    assert secret not in outside_store + sub.stdout.encode() + sub.stderr.encode()  # queue db, audit log

    caplog.set_level(logging.DEBUG)
    Dispatcher(client, str(home), once=True).serve()

    with Queue.at(home) as q:
        job = q.get(job_id)
    assert job.state == "done", job.failure
    vols = {v["index"]: v for v in read_parquet(Path(job.results_dir) / "volumes.parquet")}
    assert (vols[part]["status"], vols[part]["filesystem"]) == ("ok", "FAT16")  # the key reached the workers
    rows = {r["path"]: r for r in read_parquet(Path(job.results_dir) / "files.parquet") if r["partition"] == part}
    assert rows["secret/plans.txt"]["md5"] is not None
    assert store.job_ids() == [] and not key_file.exists()  # wiped: the finished job and the cancelled one
    starts = [r for r in map(json.loads, (home / "audit.log").read_text().splitlines())
              if r.get("action") == "start" and r.get("job") == job_id]
    assert starts and starts[0]["details"]["keys_for_partitions"] == [part]
    status = triage_cli("status", "--json", "--home", home, cluster=False)
    shown = status.stdout.encode() + caplog.text.encode() + _everything(home)
    assert secret not in shown
