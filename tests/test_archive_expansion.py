"""Archives inside evidence, end to end: an ext4 filesystem (mke2fs -d) holding zip, tar, tgz, gzip
and 7z files, nested three deep, encrypted, hostile, corrupt and bombs, triaged by `triage run`
as a user runs it. Ground truth is the bytes put into each archive, hashed here independently."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from triage_test_fixtures.archives import MTIME, evidence_files, hashes, have_tool, zip_bytes
from triage_test_fixtures.cli import triage_command
from triage_test_fixtures.mkfs import make_ext, missing_tools, png_bytes

from triage.rules.importer import import_hashset

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(missing_tools("ext4")), reason="needs e2fsprogs")]

MAX_MEMBERS = 500


def _run(image: Path, out: Path, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DASK_TRIAGE__ARCHIVES__MAX_MEMBERS": str(MAX_MEMBERS)}
    run = subprocess.run([*triage_command(), "run", str(image), "-o", str(out), "--home", str(home),
                          "--workers", "2"], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="module")
def expanded(tmp_path_factory):
    root = tmp_path_factory.mktemp("archives")
    files, truth = evidence_files()
    files["gone/deleted.zip"] = zip_bytes({"carved-member.txt": b"found by carving only" * 50})
    image = root / "disk.img"
    make_ext(image, 48 << 20, files, delete=["gone/deleted.zip"])
    home = root / "home"
    bad = root / "bad.md5"
    bad.write_text(f"{hashes(png_bytes(3))['md5']}  DCIM/bad.png\n")
    import_hashset(bad, "md5sum", "known-bad", home=home)
    cwd = root / "cwd"
    cwd.mkdir()
    out = root / "out"
    run = _run(image, out, home, cwd)
    table = pq.read_table(out / "files.parquet")
    rows = table.drop(["mtime", "atime", "ctime", "crtime"]).to_pylist()
    return {"rows": {r["path"]: r for r in rows}, "table": table, "truth": truth, "files": files, "root": root,
            "out": out, "image": image, "home": home, "cwd": cwd, "stdout": run.stdout, "summary": json.loads((out / "summary.json").read_text())}


def test_every_member_has_the_right_hashes(expanded):
    rows = expanded["rows"]
    checked = 0
    for archive, members in expanded["truth"].items():
        for member, data in members.items():
            row = rows[f"{archive}/{member}"]
            assert row["source"] == "archive member"
            assert {a: row[a] for a in ("md5", "sha1", "sha256")} == hashes(data), (archive, member)
            assert row["size"] == len(data)
            assert row["inode"] == 0 and row["offset"] is None
            checked += 1
    assert checked == 21


def test_container_names_the_archive_row(expanded):
    rows = expanded["rows"]
    assert rows["home/photos.zip/DCIM/a.png"]["container"] == "home/photos.zip"
    assert rows["home/nested.zip/level2.zip/two.txt"]["container"] == "home/nested.zip/level2.zip"
    assert rows["home/stuff.7z/inner.zip/in7.txt"]["container"] == "home/stuff.7z/inner.zip"
    for r in rows.values():
        if r["source"] == "archive member":
            assert r["container"] in rows and r["partition"] == rows[r["container"]]["partition"]
        else:
            assert r["container"] is None


def test_members_are_typed_phashed_and_timed(expanded):
    rows, table = expanded["rows"], expanded["table"]
    assert rows["home/photos.zip/DCIM/a.png"]["mime"] == "image/png"
    assert rows["home/photos.zip/DCIM/a.png"]["phash"] is not None
    assert rows["home/stuff.7z/docs/pic.png"]["phash"] is not None
    times = {r["path"]: r["mtime"] for r in table.select(["path", "mtime"]).to_pylist()}
    assert times["home/plain.tar/a/b.txt"].timestamp() == MTIME
    assert times["home/log.txt.gz/log.txt"].timestamp() == MTIME
    assert times["home/photos.zip/DCIM/a.png"].isoformat() == "2020-01-02T03:04:06+00:00"


def test_nesting_stops_at_the_depth_limit(expanded):
    rows = expanded["rows"]
    assert rows["home/nested.zip"]["status"] == "ok"
    assert rows["home/nested.zip/level2.zip"]["status"] == "ok"
    third = rows["home/nested.zip/level2.zip/level3.zip"]
    assert third["status"] == "not expanded: depth limit 2"
    assert third["md5"] is not None  # hashed and typed like any member
    assert not any(p.startswith("home/nested.zip/level2.zip/level3.zip/") for p in rows)


def test_known_bad_member_is_a_hit(expanded):
    row = expanded["rows"]["home/photos.zip/DCIM/bad.png"]
    assert row["known"] == "known-bad"
    assert expanded["summary"]["known_bad_hits"] == 1
    assert "home/photos.zip/DCIM/bad.png" in expanded["stdout"]
    assert row["tier"] == "notable"


def test_hostile_names_are_text_and_nothing_is_written(expanded):
    rows = expanded["rows"]
    for p in ("home/hostile.zip//abs/passwd", "home/hostile.zip/../../escape.txt",
              "home/hostile.zip/<script>alert(1)</script>.html", "home/backup.tgz/../outside.txt",
              "home/backup.tgz//etc/shadow", "home/backup.tgz/bad\\xff\\xfename.bin"):
        assert rows[p]["status"] == "ok", p
    link = rows["home/backup.tgz/link-out"]
    assert link["type"] == "l/l" and link["md5"] is None
    assert list(expanded["cwd"].iterdir()) == []
    root = expanded["root"]
    assert not (root / "escape.txt").exists() and not (root.parent / "escape.txt").exists()
    assert not (root / "outside.txt").exists()
    written = {p.name for p in expanded["out"].iterdir()}
    assert written <= {"files.parquet", "volumes.parquet", "image.json", "summary.json", "report.html",
                       "report.csv", "report.dfxml", "report.case.jsonld"}


@pytest.mark.skipif(not have_tool("zip") or not have_tool("7z"), reason="needs zip and 7z")
def test_encrypted_members(expanded):
    rows = expanded["rows"]
    for p in ("home/locked.zip/secret.txt", "home/locked.zip/open.txt", "home/locked.7z/secret7.txt"):
        assert rows[p]["status"] == "encrypted", p
        assert rows[p]["md5"] is None and rows[p]["size"] > 0
    assert rows["home/sealed.7z"]["status"].startswith("encrypted: 7z headers encrypted")


def test_bombs_are_status_rows_and_the_rest_is_triaged(expanded):
    rows = expanded["rows"]
    bomb = rows["home/bomb.zip"]
    assert bomb["status"].startswith("archive not fully expanded: member zeros.bin declares ratio")
    assert rows["home/bomb.zip/zeros.bin"]["md5"] is None
    assert rows["home/bomb.zip/zeros.bin"]["status"].startswith("not read:")
    assert rows["home/many.zip"]["status"] == (f"archive not fully expanded: 2000 members exceed "
                                               f"archives.max-members {MAX_MEMBERS}")
    assert not any(p.startswith("home/many.zip/") for p in rows)
    assert rows["home/many.tar"]["status"].startswith(f"archive not fully expanded: more than {MAX_MEMBERS}")
    assert sum(p.startswith("home/many.tar/") for p in rows) == MAX_MEMBERS
    assert rows["home/readme.txt"]["md5"] == hashes(b"just a file beside the archives\n")["md5"]


def test_corrupt_archives_have_a_status(expanded):
    rows = expanded["rows"]
    assert rows["home/corrupt.zip"]["status"].startswith("archive not expanded: corrupt or unsupported: BadZipFile")
    assert rows["home/garbage.7z"]["status"].startswith("archive not expanded: corrupt or unsupported")
    assert rows["home/corrupt.zip"]["md5"] == hashes(expanded["files"]["home/corrupt.zip"])["md5"]


def test_carved_archive_is_expanded(expanded):
    carved = [r for p, r in expanded["rows"].items() if p.startswith("$Carved/") and r["mime"] == "application/zip"]
    assert len(carved) == 1
    member = expanded["rows"][carved[0]["path"] + "/carved-member.txt"]
    assert member["md5"] == hashes(b"found by carving only" * 50)["md5"]
    assert member["container"] == carved[0]["path"] and member["partition"] == carved[0]["partition"]


def test_members_are_ranked(expanded):
    rows = expanded["rows"]
    assert rows["home/photos.zip/DCIM/bad.png"]["tier"] == "notable"
    assert "archive-not-expanded" in {r["rule"] for r in rows["home/bomb.zip"]["reasons"]}
    if "home/locked.zip/secret.txt" in rows:
        assert "encrypted-member" in {r["rule"] for r in rows["home/locked.zip/secret.txt"]["reasons"]}
    assert expanded["summary"]["files"]["archive_members"] == sum(
        r["source"] == "archive member" for r in rows.values())


def test_results_are_byte_identical_across_runs(expanded):
    again = expanded["root"] / "again"
    _run(expanded["image"], again, expanded["home"], expanded["cwd"])
    assert (again / "files.parquet").read_bytes() == (expanded["out"] / "files.parquet").read_bytes()
    assert "<triage:container>home/photos.zip</triage:container>" in (again / "report.dfxml").read_text()


def test_html_report_shows_members_as_text(expanded):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    dialogs = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto((expanded["out"] / "report.html").as_uri())
            page.wait_for_load_state("load")
            text = page.inner_text("body")
            scripts = page.locator("script").count()
        finally:
            browser.close()
    assert dialogs == [] and scripts == 0
    assert "home/photos.zip/DCIM/bad.png" in text  # the known-bad member, listed among the hits
    csv_text = (expanded["out"] / "report.csv").read_text()
    assert "home/hostile.zip/../../escape.txt" in csv_text and ",home/nested.zip/level2.zip," in csv_text
