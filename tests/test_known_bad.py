"""One meaning of "known-bad hit", everywhere a user sees it.

A disk holds a file in a known-bad hash set (exact), a resized copy of a known-bad
reference picture (near-duplicate), a known-bad picture that carving the whole image
finds again at the file's own place, and a stored ZIP with a known-bad picture inside
(a hit as the ZIP's member, expanded from the file; carving also finds the picture inside
the ZIP object, and that carved copy is merged away). The printed ``KNOWN-BAD`` lines,
``summary.json``, ``triage status`` and the escalation rule must all count the same four
hits, which the test counts itself from the final table.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from triage_test_fixtures import carving
from triage_test_fixtures.backlog import audit, jobs, submit, triage
from triage_test_fixtures.hashsets import jpeg, scene, variants

MKE2FS = shutil.which("mke2fs", path="/sbin:/usr/sbin:/usr/bin")
PLAIN = b"nothing to see\n" * 100
pytestmark = [pytest.mark.slow, pytest.mark.skipif(MKE2FS is None, reason="needs mke2fs (e2fsprogs)")]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("knownbad")
    src, refs, home = root / "src", root / "refs", root / "home"
    src.mkdir()
    refs.mkdir()
    bad_bytes = b"contraband ledger\n" * 400
    (src / "ledger.txt").write_bytes(bad_bytes)                      # exact hit (md5 set)
    scene(11).save(refs / "ref.png")
    (src / "resized.png").write_bytes(variants(scene(11))["half.png"])  # near-duplicate of a known-bad reference
    dup = carving.jpeg(31, (200, 150))
    (src / "photo.jpg").write_bytes(dup)                              # exact hit; carving finds it again in place
    inner = carving.jpeg(32, (160, 120))
    with zipfile.ZipFile(src / "archive.zip", "w", zipfile.ZIP_STORED) as z:
        z.writestr("inside.jpg", inner)                               # a hit as the archive's member; carved: merged away
    (src / "plain.txt").write_bytes(PLAIN)
    image = root / "disk.img"
    subprocess.run([MKE2FS, "-q", "-F", "-t", "ext4", "-b", "4096", "-d", str(src), str(image), "16M"], check=True,
                   capture_output=True)
    sums = root / "bad.md5"
    sums.write_text("".join(f"{hashlib.md5(b).hexdigest()}  f{i}\n" for i, b in enumerate((bad_bytes, dup, inner))))
    triage(home, "hashsets", "import", sums, "--name", "bad", "--category", "known-bad")
    triage(home, "hashsets", "import", refs, "--name", "refs", "--category", "known-bad")
    return {"root": root, "image": image, "home": home, "inner": inner}


def expected_hits(files: Path) -> list[str]:
    """The definition, applied by the test to the final table."""
    rows = pq.read_table(files, columns=["path", "known", "phash_match"]).to_pylist()
    return sorted(r["path"] for r in rows
                  if r["known"] == "known-bad" or (r["phash_match"] or "").startswith("refs:"))


def test_printed_lines_summary_status_and_escalation_agree(case: dict[str, Any]) -> None:
    home, image, root = case["home"], case["image"], case["root"]
    out = root / "run"
    r = triage(home, "run", image, "-o", out, "--carve-all", "--workers", "1", "--no-progress", timeout=600,
               check=False)
    assert r.returncode in (0, 4), r.stderr
    hits = expected_hits(out / "files.parquet")
    assert hits == ["archive.zip/inside.jpg", "ledger.txt", "photo.jpg", "resized.png"]
    printed = sorted(line.split()[3] for line in r.stdout.splitlines() if line.startswith("KNOWN-BAD"))
    assert printed == hits
    summary = json.loads((out / "summary.json").read_text())
    assert summary["known_bad_hits"] == summary["files"]["known_bad"] == 4
    assert summary["files"]["known_bad_exact"] == 3
    carved = pq.read_table(out / "files.parquet", columns=["source", "sha256"]).to_pylist()
    assert carving.sha256(case["inner"]) not in {c["sha256"] for c in carved if c["source"] == "carved"}  # merged

    # the same image through the queue: status and escalation count the same hits
    job = submit(home, image, "OP-KB", "A", "normal")
    serve = triage(home, "serve", "--once", "--workers", "1", env={"DASK_TRIAGE__CARVE__MODE": "all"},
                   timeout=600)
    assert serve.returncode == 0
    status = jobs(home)[job]
    assert status["state"] == "done" and status["known_bad_hits"] == 4
    assert status["summary"]["known_bad_hits"] == 4
    assert expected_hits(Path(status["results_dir"]) / "files.parquet") == hits
    escalations = [x for x in audit(home, job) if x["action"] == "escalate"]
    assert len(escalations) == 1 and 1 <= escalations[0]["details"]["known_bad_hits"] <= 4


def test_sets_are_fixed_when_the_run_starts(client: Any, case: dict[str, Any], tmp_path: Path) -> None:
    """A set imported while a run goes on is not used by it: one table, one state of the sets."""
    from triage.driver import Driver
    from triage.finish import finalize
    from triage.rules.importer import import_hashset
    from triage.runstate import ImageRun

    home = tmp_path / "home"
    shutil.copytree(case["home"], home)
    run = ImageRun(case["image"], tmp_path / "out", home=home, carve="none")
    late = tmp_path / "late.md5"
    late.write_text(f"{hashlib.md5(PLAIN).hexdigest()}  plain.txt\n")
    import_hashset(late, "late", "known-bad", home=home)  # mid-run
    Driver(client).drive(run)
    res = finalize(run)
    rows = {r["path"]: r for r in pq.read_table(res.out / "files.parquet").to_pylist()}
    assert rows["plain.txt"]["known"] is None and "late" not in (rows["plain.txt"]["hashset_hits"] or [])
    assert rows["ledger.txt"]["hashset_hits"] == ["bad"]
    assert res.summary["known_bad_hits"] == 4  # ledger.txt, photo.jpg, resized.png, archive.zip/inside.jpg; not "late"
