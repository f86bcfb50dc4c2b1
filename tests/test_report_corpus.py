"""DFXML reports of the third-party corpus images, against fiwalk's own DFXML shipped beside them.

For every corpus image with a `.fiwalk.xml` that this version reads, the report is
valid against the DFXML schema, and every regular file fiwalk hashed (and fls lists by
that name) is a fileobject in the same volume, with the same inode, name and md5.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from triage_test_fixtures.tsk_truth import SECTOR, parse_fls

from triage.reports import write_reports
from triage.rules.errors import TriageError
from triage.workers.image import identify

pytestmark = pytest.mark.slow
NS = "{http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML}"


def _corpus() -> Path | None:
    here = Path(__file__).resolve().parents[1]
    for cand in (os.environ.get("TRIAGE_CORPUS"), here.parent / "shared" / "corpus", "/work/shared/corpus"):
        if cand and (Path(cand) / "MANIFEST.md").is_file():
            return Path(cand)
    return None


CORPUS = _corpus()
if CORPUS is None:
    pytest.skip("the third-party corpus (shared/corpus/MANIFEST.md) is not on this machine", allow_module_level=True)
assert CORPUS is not None
SCHEMA = CORPUS.parent / "schemas" / "dfxml" / "dfxml.xsd"


def _readable(image: Path) -> bool:
    try:
        identify(image)
    except TriageError:
        return False
    return True


WITH_FIWALK = sorted(str(p.relative_to(CORPUS))[: -len(".fiwalk.xml")] for p in CORPUS.glob("*/*.fiwalk.xml"))
READ = [n for n in WITH_FIWALK if _readable(CORPUS / n)]


def _objects(xml: Path) -> list[tuple[int, int, str, str]]:
    """(volume offset, inode, filename, md5) of every regular file with an md5."""
    out = []
    for vol in ET.parse(xml).getroot().iter(NS + "volume"):
        offset = int(vol.get("offset", "0"))
        for fo in vol.iter(NS + "fileobject"):
            md5 = {h.get("type", "").lower(): (h.text or "").strip().lower() for h in fo.findall(NS + "hashdigest")}
            if fo.findtext(NS + "meta_type") == "1" and "md5" in md5:
                out.append((offset, int(fo.findtext(NS + "inode") or -1), fo.findtext(NS + "filename") or "", md5["md5"]))
    return out


def _fls_listed(image: Path) -> set[tuple[int, int, str]]:
    listed = set()
    whole = image.with_name(image.name + ".fls.txt")
    parts = {0: whole} if whole.is_file() else {}
    for f in image.parent.glob(image.name + ".o*.fls.txt"):
        m = re.fullmatch(re.escape(image.name) + r"\.o(\d+)\.fls\.txt", f.name)
        if m:
            parts[int(m.group(1))] = f
    for sector, f in parts.items():
        listed.update((sector * SECTOR, e.inode_number, e.path) for e in parse_fls(f.read_bytes(), long=True))
    return listed


def test_some_corpus_images_are_compared():
    assert len(READ) >= 8, READ


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="needs xmllint (libxml2-utils)")
@pytest.mark.parametrize("name", READ)
def test_dfxml_report_is_valid_and_agrees_with_fiwalk(name, triaged, tmp_path):
    image = CORPUS / name
    run = triaged(image)
    [report] = write_reports(run.out, ["dfxml"], dest=tmp_path)
    r = subprocess.run(["xmllint", "--noout", "--schema", str(SCHEMA), str(report)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    listed = _fls_listed(image)
    truth = [o for o in _objects(image.with_name(image.name + ".fiwalk.xml")) if o[:3] in listed]
    ours = {o[:3]: o[3] for o in _objects(report)}
    if not truth:
        pytest.skip(f"fiwalk hashed no regular file fls lists in {name}")
    wrong = [(o, ours.get(o[:3])) for o in truth if ours.get(o[:3]) != o[3]]
    assert not wrong, f"{name}: files whose md5 differs from fiwalk (or missing): {wrong[:10]}"
