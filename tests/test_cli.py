"""The CLI as a user runs it: as a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from triage_test_fixtures.shared import CORPUS

TRIAGE = [sys.executable, "-m", "triage.cli.main"]


def triage(*args, cwd=None):
    return subprocess.run([*TRIAGE, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("verb", ["run", "demo", "hashsets"])
def test_every_verb_has_help_with_an_example(verb):
    r = triage(verb, "--help")
    assert r.returncode == 0, r.stderr
    assert "example" in r.stdout.lower()


def test_missing_image_is_one_line_and_exit_3(tmp_path):
    r = triage("run", tmp_path / "nowhere.E01", "-o", tmp_path / "out")
    assert r.returncode == 3
    assert r.stderr.strip().count("\n") == 0
    assert "nowhere.E01" in r.stderr and "no such file" in r.stderr
    assert not (tmp_path / "out").exists()


def test_usage_error_is_exit_2(tmp_path):
    assert triage("run", "x.dd").returncode == 2  # no -o


@pytest.mark.slow
def test_demo_builds_and_triages_the_sample(tmp_path):
    r = triage("demo", "--dir", tmp_path / "d", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "results in" in r.stdout
    files = pq.read_table(tmp_path / "d" / "results" / "files.parquet").drop(["mtime", "atime", "ctime", "crtime"])
    rows = files.to_pylist()
    by_path = {(r["partition"], r["path"]): r for r in rows}
    assert by_path[(2, "Documents/holiday.txt")]["ext_mismatch"] is True
    assert by_path[(2, "Documents/holiday.txt")]["mime"] == "image/jpeg"
    assert by_path[(2, "Documents/to-delete.txt")]["deleted"] is True
    assert by_path[(2, "Documents/to-delete.txt")]["source"] == "deleted"
    assert all(len(r["phash"]) == 16 for r in rows if r["path"].startswith("Pictures/"))
    vols = pq.read_table(tmp_path / "d" / "results" / "volumes.parquet").to_pylist()
    assert [v["filesystem"] for v in vols if v["flags"] == "alloc"] == ["Ext4", "Ext2", None]
    assert "no filesystem recognised" in [v for v in vols if v["flags"] == "alloc"][2]["status"]
    summary = json.loads((tmp_path / "d" / "results" / "summary.json").read_text())
    assert summary["files"]["deleted"] == 2
    carved = sorted((r["partition"], r["offset"], r["mime"]) for r in rows if r["source"] == "carved")
    assert carved == [(1, 512 * 1024, "image/jpeg"), (4, 37 * 2**20 + 64 * 1024, "image/png")]


@pytest.mark.slow
def test_several_images_and_json(tmp_path):
    corpus = CORPUS
    imgs = [corpus / "sleuthkit" / "image.dd", corpus / "dfvfs" / "ímynd.dd", tmp_path / "missing.dd"]
    r = triage("run", *imgs, "-o", tmp_path / "out", "--workers", "1", "--json")
    assert r.returncode == 3, r.stderr  # the missing one; the others are triaged
    assert "missing.dd" in r.stderr
    summaries = json.loads(r.stdout)
    assert [Path(s["out"]).name for s in summaries] == ["image.dd", "ímynd.dd"]
    for s in summaries:
        assert (Path(s["out"]) / "files.parquet").is_file()
