"""The results store's commit: durable with one syncfs for a big tree, file by file for a small one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from triage import store
from triage.rules.errors import InputError


class Spy:
    """Counts the calls of a real function and still makes them."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self, *args):
        self.calls.append(args)
        return self.real(*args)


def stage(out: Path, carved: int) -> store.Staging:
    s = store.Staging(out)
    (s.path("files.parquet")).write_bytes(b"PAR1")
    (s.path("image.json")).write_text("{}")
    if carved:
        d = s.path("carved") / "p2"
        d.mkdir(parents=True)
        for i in range(carved):
            (d / f"{i:05}.jpg").write_bytes(b"\xff\xd8\xff" + i.to_bytes(4, "big"))
    return s


@pytest.fixture
def spies(monkeypatch):
    fsync = Spy(os.fsync)
    monkeypatch.setattr(store.os, "fsync", fsync)
    real = store._syncfs()
    assert real is not None, "this Linux C library has syncfs(2)"
    syncfs = Spy(real)
    monkeypatch.setattr(store, "_syncfs", lambda: syncfs)
    return fsync, syncfs


def test_a_big_tree_is_made_durable_with_one_syncfs_not_one_fsync_per_file(tmp_path, spies):
    fsync, syncfs = spies
    out = tmp_path / "out"
    stage(out, carved=2000).commit({"files": 2002})
    assert len(syncfs.calls) == 1
    # the directory entries of the renames and summary.json itself, not 2,000 carved files
    assert len(fsync.calls) <= 4, len(fsync.calls)
    assert len(list((out / "carved" / "p2").iterdir())) == 2000
    assert (out / "carved" / "p2" / "01999.jpg").read_bytes() == b"\xff\xd8\xff" + (1999).to_bytes(4, "big")
    assert json.loads((out / "summary.json").read_text()) == {"files": 2002}
    assert [p.name for p in out.iterdir() if p.name.startswith(".partial-")] == []


def test_a_small_tree_is_fsynced_file_by_file(tmp_path, spies):
    fsync, syncfs = spies
    out = tmp_path / "out"
    stage(out, carved=5).commit({"files": 7})
    assert syncfs.calls == []
    # 2 result files + 5 carved + 2 folders + the staging folder, then the renames and summary.json
    assert len(fsync.calls) >= 10
    assert sorted(p.name for p in out.iterdir()) == ["carved", "files.parquet", "image.json", "summary.json"]


def test_without_syncfs_a_big_tree_is_fsynced_file_by_file(tmp_path, monkeypatch):
    fsync = Spy(os.fsync)
    monkeypatch.setattr(store.os, "fsync", fsync)
    monkeypatch.setattr(store, "_syncfs", lambda: None)  # not Linux
    out = tmp_path / "out"
    stage(out, carved=100).commit({"files": 102})
    assert len(fsync.calls) >= 100
    assert len(list((out / "carved" / "p2").iterdir())) == 100


def test_results_already_there_are_not_replaced_without_overwrite(tmp_path):
    out = tmp_path / "out"
    stage(out, carved=0).commit({"files": 2})
    with pytest.raises(InputError, match="already holds results"):
        store.Staging(out)
    store.Staging(out, overwrite=True).abort()  # a replacing run that fails leaves the results as they were
    assert json.loads((out / "summary.json").read_text()) == {"files": 2}
