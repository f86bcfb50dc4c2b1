"""The four reports, each checked by the format's own oracle: Chromium, the csv module, xmllint, case_validate.

The hostile-name image (tests/fixtures/bad_images.py: `<script>alert(1)</script>.html`,
names that are not UTF-8, right-to-left overrides, `../../` in a name) is triaged once;
its reports are written the way `triage report` does.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triage.reports import WRITERS, write_reports
from triage.reports.csvreport import neutralise
from triage.rules.errors import ResultsError
from triage.store import write_json, write_parquet
from triage_test_fixtures.shared import DFXML_SCHEMA

SCHEMA = DFXML_SCHEMA
DFXML = "{http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML}"
JOB = SimpleNamespace(id="J000007", case="OP-<b>ROSE</b>", exhibit="JD/1", examiner="DC Smith")


@pytest.fixture(scope="module")
def hostile_reports(hostile_image, triaged, tmp_path_factory):
    run = triaged(hostile_image)
    dest = tmp_path_factory.mktemp("hostile-reports")
    written = write_reports(run.out, ["html", "csv", "dfxml", "case"], dest=dest, job=JOB)
    return run, dest, written


def test_every_report_has_its_fixed_name_and_nothing_else_is_written(hostile_reports):
    run, dest, written = hostile_reports
    assert sorted(p.name for p in written) == ["report.case.jsonld", "report.csv", "report.dfxml", "report.html"]
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in written)  # no temp files, no escapes
    assert not (dest.parent / "escape.txt").exists() and not list(dest.parent.glob("pwned*"))
    assert WRITERS.names() == ["case", "csv", "dfxml", "html"]


@pytest.mark.slow
def test_html_shows_hostile_names_as_text_and_runs_nothing(hostile_reports):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    run, dest, _ = hostile_reports
    dialogs, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            page.goto((dest / "report.html").as_uri())
            page.wait_for_load_state("load")
            text = page.inner_text("body")
            scripts = page.locator("script").count()
            images = page.locator("img").count()
            title = page.title()
        finally:
            browser.close()
    assert dialogs == []
    assert scripts == 0 and images == 0  # no markup from a name became an element
    assert requests == [(dest / "report.html").as_uri()]  # self-contained: nothing else is loaded
    assert "<script>alert(1)</script>.html" in text and "<img src=x onerror=alert(1)>.html" in text
    assert "OP-<b>ROSE</b>" in text  # the job's case name is escaped too
    for heading in ("The device at a glance", "Look first", "Known-item hits", "Near-duplicates", "Problems",
                    "Provenance"):
        assert heading in text
    assert run.image["sha256"] in text and "default-rules.yaml" in text
    assert "hostile.ext4" in title


def test_csv_reads_back_every_row_with_formulas_neutralised(hostile_reports):
    run, dest, _ = hostile_reports
    with open(dest / "report.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = pq.read_schema(run.out / "files.parquet").names
    assert list(rows[0].keys()) == names
    assert [r["path"] for r in rows] == [r["path"] for r in run.files]
    by_path = {r["path"]: r for r in rows}
    assert by_path["inbox/-rf --no-preserve-root"]["name"] == "'-rf --no-preserve-root"
    assert all(not r[c].startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for c in names
               if c not in ("score", "size", "inode", "partition", "attr_type", "attr_id", "phash_distance",
                            "offset", "length"))
    for r, truth in zip(rows, run.files):
        assert int(r["score"]) == truth["score"] and r["tier"] == truth["tier"]
        assert r["reasons"].split(" ")[0] == truth["reasons"][0]["rule"]


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_csv_injection_cells(cell):
    assert neutralise(cell) == "'" + cell
    assert neutralise("inbox/" + cell) == "inbox/" + cell


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="needs xmllint (libxml2-utils)")
def test_dfxml_is_valid_and_carries_every_row(hostile_reports):
    run, dest, _ = hostile_reports
    r = subprocess.run(["xmllint", "--noout", "--schema", str(SCHEMA), str(dest / "report.dfxml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    objs = list(ET.parse(dest / "report.dfxml").getroot().iter(DFXML + "fileobject"))
    assert len(objs) == len(run.files)
    for fo, row in zip(objs, run.files):
        digests = {h.get("type"): h.text for h in fo.findall(DFXML + "hashdigest")}
        assert digests.get("md5") == row["md5"]
        assert int(fo.findtext(DFXML + "filesize")) == row["size"]
        assert fo.findtext("{https://evidence-triage.invalid/ns/dfxml/1}tier") == row["tier"]


@pytest.mark.slow
def test_case_uco_validates_with_no_warnings(hostile_reports):
    exe = Path(sys.executable).with_name("case_validate")  # case-utils, from the test extra
    validate = str(exe) if exe.exists() else shutil.which("case_validate")
    if validate is None:
        pytest.skip("case_validate (PyPI case-utils) is not installed")
    run, dest, _ = hostile_reports
    r = subprocess.run([validate, str(dest / "report.case.jsonld")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Conforms: True" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    assert "Results (" not in r.stdout  # not even a warning
    doc = json.loads((dest / "report.case.jsonld").read_text())
    kinds = [n["@type"] for n in doc["@graph"]]
    assert kinds.count("uco-observable:File") == len(run.files)
    for needed in ("case-investigation:InvestigativeAction", "uco-tool:ConfiguredTool", "uco-observable:Image",
                   "case-investigation:Investigation", "case-investigation:ProvenanceRecord", "uco-identity:Person",
                   "uco-analysis:Analysis", "uco-observable:ObservableRelationship"):
        assert needed in kinds, needed


# ---------------------------------------------------------------- bad input


def _tiny_results(out: Path, *, ranked: bool = True, summary: bool = True, entropy: bool = False) -> Path:
    """A results folder written by hand: three rows, one volume."""
    from triage.ranking import rank_result
    from triage.workers.schema import FILES_SCHEMA, VOLUMES_SCHEMA

    out.mkdir(parents=True)
    rows = [{"partition": 0, "path": p, "name": p.rsplit("/", 1)[-1], "inode": i + 2, "type": "r/r", "size": 10,
             "deleted": False, "source": "allocated", "status": "ok", "md5": "0" * 32, "sha1": "1" * 40,
             "sha256": "2" * 64, "mime": "text/plain"} for i, p in enumerate(["=1+1.txt", "@x", "home/a/b.txt"])]
    files = pa.Table.from_pylist(rows, schema=FILES_SCHEMA)
    if entropy:  # the content pass's column
        values = pa.array([7.99, 4.5, None], pa.float64())
        i = files.schema.get_field_index("entropy")
        files = files.set_column(i, "entropy", values) if i >= 0 else files.append_column("entropy", values)
    files, ranking = rank_result(files) if ranked else (files.drop(["score", "tier", "reasons"]), None)
    write_parquet(files, out / "files.parquet")
    write_parquet(pa.Table.from_pylist([{"index": 0, "slot": "whole image", "start": 0, "length": 1 << 20,
                                         "flags": "alloc", "description": "ext4", "volume_system": "none",
                                         "filesystem": "Ext4", "files": 3, "status": "ok"}], schema=VOLUMES_SCHEMA),
                  out / "volumes.parquet")
    image = {"path": "x.dd", "format": "raw", "segments": ["x.dd"], "size": 1 << 20, "md5": "a" * 32,
             "sha256": "b" * 64, "ewf": None, "error": None}
    write_json(image, out / "image.json")
    if summary:
        write_json({"image": image, "files": {"entries": 3}, "problems": [], "started": "2024-01-01T00:00:00+00:00",
                    "finished": "2024-01-01T00:00:05+00:00", "seconds": 5, "ranking": ranking}, out / "summary.json")
    return out


def test_half_written_and_older_results_are_one_line_errors(tmp_path, triage_cli):
    half = _tiny_results(tmp_path / "half", summary=False)
    r = triage_cli("report", half, cluster=False)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "half-written" in r.stderr and str(half) in r.stderr
    old = _tiny_results(tmp_path / "old", ranked=False)
    for verb in ("report", "top"):
        r = triage_cli(verb, old, cluster=False)
        assert r.returncode == 3 and r.stderr.count("\n") == 1 and "older version" in r.stderr, r.stderr
        assert "triage rank" in r.stderr
    r = triage_cli("rank", old, cluster=False)
    assert r.returncode == 0, r.stderr
    r = triage_cli("report", old, "--format", "csv,html", "-o", tmp_path / "reports", "--json", cluster=False)
    assert r.returncode == 0, r.stderr
    assert sorted(Path(p).name for p in json.loads(r.stdout)[0]["reports"]) == ["report.csv", "report.html"]
    rows = list(csv.DictReader(open(tmp_path / "reports" / "report.csv", newline="", encoding="utf-8")))
    assert [r["name"] for r in rows] == ["'=1+1.txt", "'@x", "b.txt"]
    r = triage_cli("report", tmp_path / "missing", cluster=False)
    assert r.returncode == 3 and "no such results folder or job id" in r.stderr
    r = triage_cli("report", old, "--format", "pdf", cluster=False)
    assert r.returncode == 2 or "unknown report format 'pdf'" in r.stderr


def test_a_report_is_renamed_into_place_only_when_whole(tmp_path, monkeypatch):
    out = _tiny_results(tmp_path / "res")
    writer = WRITERS.get("csv")

    def broken(self, ctx, fh):
        fh.write("partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write", broken)
    with pytest.raises(ResultsError, match="No space left"):
        write_reports(out, ["csv"])
    assert not (out / "report.csv").exists() and not list(out.glob(".*tmp"))


def test_rank_rewrites_the_reports_already_there(tmp_path, triage_cli):
    out = _tiny_results(tmp_path / "res")
    write_reports(out, ["csv"])
    rules = tmp_path / "r.yaml"
    rules.write_text("extends: none\nrules:\n  - {name: texts, when: {mime: text/plain}, weight: 70, reason: text}\n")
    r = triage_cli("rank", out, "--rules", rules, cluster=False)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out / "report.csv", newline="", encoding="utf-8")))
    assert {r["tier"] for r in rows} == {"notable"} and not (out / "report.html").exists()


def test_triage_run_writes_the_reports_unless_told_not_to(hostile_image, triage_cli, tmp_path):
    out = tmp_path / "run"
    r = triage_cli("run", hostile_image.path, "-o", out, "--case", "OP-9", "--no-progress")
    assert r.returncode in (0, 4), r.stderr
    assert sorted(p.name for p in out.glob("report.*")) == ["report.case.jsonld", "report.csv", "report.dfxml",
                                                             "report.html"]
    assert "device " in r.stdout and "triage top" in r.stdout
    r = triage_cli("run", hostile_image.path, "-o", out, "--overwrite", "--no-reports", "--no-progress")
    assert r.returncode in (0, 4), r.stderr
    assert list(out.glob("report.*")) == []  # none left describing the replaced results
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - name: x\n    when: {size: {over: 1}}\n    weight: 1\n    reason: x\n")
    r = triage_cli("run", hostile_image.path, "-o", tmp_path / "never", "--rules", broken, "--no-progress")
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and f"{broken}: line 3" in r.stderr, r.stderr
    assert not (tmp_path / "never").exists()  # refused before any work


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="needs xmllint (libxml2-utils)")
def test_entropy_is_reported_when_the_table_has_it(tmp_path):
    out = _tiny_results(tmp_path / "res", entropy=True)
    write_reports(out, ["dfxml", "case", "csv"])
    r = subprocess.run(["xmllint", "--noout", "--schema", str(SCHEMA), str(out / "report.dfxml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "<triage:entropy>7.9900</triage:entropy>" in (out / "report.dfxml").read_text()
    doc = json.loads((out / "report.case.jsonld").read_text())
    values = [f.get("uco-observable:entropy") for n in doc["@graph"] for f in n.get("uco-core:hasFacet", [])]
    assert {"@type": "xsd:decimal", "@value": "7.9900"} in values
    assert next(csv.DictReader(open(out / "report.csv", newline="", encoding="utf-8")))["entropy"] == "7.99"


def test_case_iris_are_uuid5_of_each_names_anchor() -> None:
    """Every CASE IRI ends in uuid5(document, the name's first two parts), whatever order names come in:
    a file's names in a row share one (``file-1``, ``file-1-hash-md5``), while ``file-12`` after
    ``file-1`` and ``image-facet`` after ``image`` are anchors of their own."""
    import uuid

    from triage.reports.caseuco import Iris

    doc = "urn:evidence-triage:0123:"
    ns = uuid.uuid5(uuid.NAMESPACE_URL, doc)
    names = ["image", "image-facet", "image-file", "image", "file-1", "file-1-file", "file-1-hash-md5", "file-12",
             "file-12-in", "file-1-in", "configuration-entry-1", "configuration-entry-2", "partition-0",
             "partition-0-in-image", "tool", "file-1"]
    iris = Iris(doc)
    assert [iris(n) for n in names] == [f"kb:{n}-{uuid.uuid5(ns, '-'.join(n.split('-', 2)[:2]))}" for n in names]
