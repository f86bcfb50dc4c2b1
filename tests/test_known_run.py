"""Known-item sets in a real run: sets in every format made from a generated image's files,
near-duplicates of reference pictures planted in it, and strangers that must not match."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from triage_test_fixtures.hashsets import make_rds, scene, variants, vics_document

from triage.rules.importer import import_hashset

MKE2FS = shutil.which("mke2fs", path="/sbin:/usr/sbin:/usr/bin")
FORMATS = ["md5sum", "sha1sum", "sha256sum", "hashdeep", "bare", "csv", "rds2", "rdsv3", "vics"]
REFS, STRANGERS = 4, 60

pytestmark = pytest.mark.skipif(MKE2FS is None, reason="needs mke2fs (e2fsprogs)")


def _h(data: bytes) -> dict[str, str]:
    return {a: hashlib.new(a, data).hexdigest() for a in ("md5", "sha1", "sha256")}


def _set_file(fmt: str, path: Path, data: bytes) -> Path:
    h, n = _h(data), len(data)
    filler = [_h(random.Random(i).randbytes(64)) for i in range(5)]  # entries that match nothing
    rows = [h, *filler]
    if fmt in ("md5sum", "sha1sum", "sha256sum"):
        alg = fmt.removesuffix("sum")
        path.write_text("".join(f"{r[alg]}  evidence/file{i}.bin\n" for i, r in enumerate(rows)))
    elif fmt == "hashdeep":
        path.write_text("%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n## Invoked from: /case\n##\n"
                        + "".join(f"{n},{r['md5']},{r['sha256']},/case/f{i}.bin\n" for i, r in enumerate(rows)))
    elif fmt == "bare":
        path.write_text("".join(f"{r['sha256']}\n" for r in rows))
    elif fmt == "csv":
        path.write_text("FileName,SHA1,Size\n" + "".join(f"f{i}.bin,{r['sha1'].upper()},{n}\n" for i, r in enumerate(rows)))
    elif fmt == "rds2":
        path.write_text('"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\n'
                        + "".join(f'"{r["sha1"].upper()}","{r["md5"].upper()}","00000000","f{i}.bin",{n},1,"WIN",""\n'
                                  for i, r in enumerate(rows)))
    elif fmt == "rdsv3":
        make_rds(path, [(r["sha256"], r["sha1"], r["md5"]) for r in rows])
    elif fmt == "vics":
        path.write_text(json.dumps(vics_document([r["md5"] for r in rows], [r["sha1"] for r in rows])))
    return path


@pytest.fixture(scope="module")
def known_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("known")
    src, refs, sets, home = root / "src", root / "refs", root / "sets", root / "home"
    for d in (src / "docs", src / "pics" / "near", src / "pics" / "other", refs, sets):
        d.mkdir(parents=True)
    bad = {}
    for i, fmt in enumerate(FORMATS):
        data = random.Random(100 + i).randbytes(3000 + 500 * i)
        (src / "docs" / f"bad-{fmt}.bin").write_bytes(data)
        bad[fmt] = _set_file(fmt, sets / f"{fmt}.set", data)
    good = b"MZ" + random.Random(7).randbytes(5000)
    (src / "docs" / "system.dll").write_bytes(good)
    make_rds(sets / "nsrl-good.db", [(_h(good)["sha256"], _h(good)["sha1"], _h(good)["md5"])])
    near = {}
    for i in range(REFS):
        img = scene(i)
        img.save(refs / f"ref{i}.png")
        for vname, data in variants(img).items():
            name = f"ref{i}-{vname}"
            (src / "pics" / "near" / name).write_bytes(data)
            near[name] = f"refs:ref{i}.png"
    shutil.copy(refs / "ref0.png", src / "pics" / "exact-copy.png")
    for i in range(STRANGERS):
        scene(5000 + i).save(src / "pics" / "other" / f"stranger{i:03d}.jpg", quality=85)
    image = root / "disk.img"
    subprocess.run([MKE2FS, "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "48M"], check=True,
                   capture_output=True)
    for fmt, path in bad.items():
        import_hashset(path, fmt, "known-bad", home=home)
    import_hashset(sets / "nsrl-good.db", "nsrl", "known-good", home=home)
    # one set through the CLI, as an examiner imports it
    r = subprocess.run([sys.executable, "-m", "triage.cli.main", "hashsets", "import", str(refs), "--name", "refs",
                        "--category", "known-bad", "--home", str(home)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = root / "out"
    run = subprocess.run([sys.executable, "-m", "triage.cli.main", "run", str(image), "-o", str(out), "--home",
                          str(home), "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = pq.read_table(out / "files.parquet").drop(["mtime", "atime", "ctime", "crtime"]).to_pylist()
    return {"rows": {r["path"]: r for r in rows}, "stdout": run.stdout, "near": near,
            "summary": json.loads((out / "summary.json").read_text())}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_hits_exactly_its_file(known_case, fmt):
    row = known_case["rows"][f"docs/bad-{fmt}.bin"]
    assert row["known"] == "known-bad"
    assert row["hashset_hits"] == [fmt]
    assert f"docs/bad-{fmt}.bin" in known_case["stdout"]


@pytest.mark.slow
def test_known_good_and_unknown(known_case):
    rows = known_case["rows"]
    assert rows["docs/system.dll"]["known"] == "known-good"
    assert rows["docs/system.dll"]["hashset_hits"] == ["nsrl"]
    hashed_unknown = [r for p, r in rows.items() if p.startswith("pics/other/")]
    assert all(r["known"] is None and r["hashset_hits"] == [] for r in hashed_unknown)
    assert rows["pics"]["hashset_hits"] is None  # a directory is not hashed, so not looked up


@pytest.mark.slow
def test_resized_and_recompressed_copies_match_their_reference(known_case):
    rows = known_case["rows"]
    for name, ref in known_case["near"].items():
        row = rows[f"pics/near/{name}"]
        assert row["phash_match"] == ref, name
        assert 0 <= row["phash_distance"] <= 10, name


@pytest.mark.slow
def test_strangers_give_no_perceptual_false_positive(known_case):
    strangers = [r for p, r in known_case["rows"].items() if p.startswith("pics/other/stranger")]
    assert len(strangers) == STRANGERS
    assert all(r["phash"] is not None for r in strangers)
    assert [r["path"] for r in strangers if r["phash_match"] is not None] == []


@pytest.mark.slow
def test_exact_copy_is_known_and_counted(known_case):
    row = known_case["rows"]["pics/exact-copy.png"]
    assert row["known"] == "known-bad" and row["hashset_hits"] == ["refs"]
    assert row["phash_match"] == "refs:ref0.png" and row["phash_distance"] == 0
    files = known_case["summary"]["files"]
    assert files["known_bad_exact"] == len(FORMATS) + 1
    # one definition of a known-bad hit: exact hashes and near-duplicates of the known-bad "refs" pictures
    assert files["known_bad"] == known_case["summary"]["known_bad_hits"] == len(FORMATS) + 1 + len(known_case["near"])
    assert known_case["stdout"].count("KNOWN-BAD") == files["known_bad"]
    assert files["known_good"] == 1
    assert files["phash_matches"] == len(known_case["near"]) + 1
