"""DFXML: the image, its volumes and one ``fileobject`` per row, valid against the DFXML schema.

Elements follow the schema's sequence (which is fiwalk's order): filename,
partition, id, name_type, filesize, alloc flags, inode, meta_type, times,
libmagic, byte_runs, hashdigests; the ranking and known-item columns follow in
the project's own namespace, which the schema admits after the last DFXML child.
The image's md5/sha256 sit in one ``byte_run`` covering the whole image, which
is what they are hashes of. Text that XML 1.0 cannot carry (control characters
in hostile names) is written as ``\\xNN``; everything else is escaped.
Written with plain string writes, one element at a time: streaming by design.
"""

from __future__ import annotations

import re
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

from triage.reports import WRITERS, Context, iso

DFXML_NS = "http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML"
TRIAGE_NS = "https://evidence-triage.invalid/ns/dfxml/1"  # the project's own elements (a name, never fetched)
DFXML_VERSION = "1.2.0"
_BAD_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: fls meta type letter -> TSK_FS_META_TYPE number (fiwalk's meta_type)
META_TYPES = {"r": 1, "d": 2, "p": 3, "c": 4, "b": 5, "l": 6, "h": 7, "s": 8, "w": 9, "v": 10, "V": 11}
NAME_TYPES = set("-pcdbrlshwVv")
COLUMNS = ["partition", "path", "name", "inode", "type", "size", "deleted", "source", "mtime", "atime", "ctime",
           "crtime", "md5", "sha1", "sha256", "mime", "magic", "ext_mismatch", "phash", "status", "known",
           "hashset_hits", "phash_match", "phash_distance", "offset", "length", "score", "tier", "reasons", "entropy",
           "container"]


def text(value: Any) -> str:
    return escape(_BAD_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value)))


def attr(value: Any) -> str:
    return quoteattr(_BAD_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value)))


@WRITERS.register("dfxml")
class DfxmlReport:
    NAME = "dfxml"
    FILENAME = "report.dfxml"
    DESCRIPTION = "Digital Forensics XML: image, volumes, one fileobject per row, ranking in the triage namespace"
    TEXT = True

    def write(self, ctx: Context, fh: IO[str]) -> None:
        image = ctx.results.image()
        volumes = {v["index"]: v for v in ctx.results.volumes().to_pylist()}
        w = fh.write
        w("<?xml version='1.0' encoding='UTF-8'?>\n")
        w(f"<dfxml xmlns='{DFXML_NS}' xmlns:dc='http://purl.org/dc/elements/1.1/' "
          f"xmlns:triage='{TRIAGE_NS}' version='{DFXML_VERSION}'>\n")
        w("  <metadata>\n    <dc:type>Disk Image</dc:type>\n")
        if ctx.case_name:
            w(f"    <triage:case>{text(ctx.case_name)}</triage:case>\n")
        if ctx.exhibit:
            w(f"    <triage:exhibit>{text(ctx.exhibit)}</triage:exhibit>\n")
        w("  </metadata>\n")
        w(f"  <creator>\n    <program>evidence-triage</program>\n    <version>{text(ctx.tool.split()[-1])}</version>\n"
          f"    <execution_environment>\n      <command_line>{text(' '.join(ctx.command))}</command_line>\n")
        if ctx.summary.get("started"):
            w(f"      <start_time>{text(ctx.summary['started'])}</start_time>\n")
        w("    </execution_environment>\n  </creator>\n")
        w("  <source>\n")
        for seg in image.get("segments") or [image.get("path")]:
            w(f"    <image_filename>{text(seg)}</image_filename>\n")
        w("  </source>\n")
        w("  <diskimageobject>\n    <byte_runs>\n")
        w(f"      <byte_run img_offset='0' len='{int(image.get('size') or 0)}'>\n")
        for algo in ("md5", "sha256"):
            if image.get(algo):
                w(f"        <hashdigest type='{algo}'>{text(image[algo])}</hashdigest>\n")
        w("      </byte_run>\n    </byte_runs>\n    <sector_size>512</sector_size>\n")
        ranking = ctx.ranking
        current: int | None = None
        seen: set[int] = set()
        row_id = 0
        for batch in ctx.batches(COLUMNS):
            for row in batch.to_pylist():
                row_id += 1
                part = row["partition"]
                if part != current:
                    if current is not None:
                        _close_volume(w, volumes.get(current))
                    _open_volume(w, volumes.get(part), part)
                    current = part
                    seen.add(part)
                _fileobject(w, row, row_id, part)
        if current is not None:
            _close_volume(w, volumes.get(current))
        for idx, vol in sorted(volumes.items()):  # volumes with no rows (unallocated, no filesystem)
            if idx not in seen:
                _open_volume(w, vol, idx)
                _close_volume(w, vol)
        w("  </diskimageobject>\n")
        if ranking:
            w(f"  <triage:device score='{int(ranking.get('score', 0))}' tier={attr(ranking.get('tier', ''))}>\n")
            for reason in ranking.get("reasons", []):
                w(f"    <triage:reason>{text(reason)}</triage:reason>\n")
            for rf in ranking.get("rules", []):
                w(f"    <triage:rules path={attr(rf.get('path'))} sha256={attr(rf.get('sha256'))}/>\n")
            w("  </triage:device>\n")
        w("</dfxml>\n")


def _open_volume(w, vol: dict[str, Any] | None, index: int) -> None:
    start = int(vol["start"]) if vol else 0
    w(f"    <volume offset='{start}'>\n      <partition_offset>{start}</partition_offset>\n")
    if vol and vol.get("filesystem"):
        w(f"      <ftype_str>{text(vol['filesystem'])}</ftype_str>\n")


def _close_volume(w, vol: dict[str, Any] | None) -> None:
    if vol and vol.get("status") not in (None, "ok"):
        w(f"      <error>{text(vol['status'])}</error>\n")  # the schema puts a volume's error after its files
    w("    </volume>\n")


def _fileobject(w, r: dict[str, Any], row_id: int, part: int) -> None:
    name_type, meta = (r["type"] + "/-")[0], (r["type"].split("/") + ["-"])[1][:1]
    out = ["      <fileobject>\n", f"        <filename>{text(r['path'])}</filename>\n"]
    if r["status"] != "ok":
        out.append(f"        <error>{text(r['status'])}</error>\n")
    out.append(f"        <partition>{part + 1}</partition>\n        <id>{row_id}</id>\n")
    if name_type in NAME_TYPES:
        out.append(f"        <name_type>{name_type}</name_type>\n")
    out.append(f"        <filesize>{int(r['size'])}</filesize>\n")
    out.append("        <unalloc>1</unalloc>\n" if r["deleted"] else "        <alloc>1</alloc>\n")
    if r["source"] == "orphan":
        out.append("        <orphan>1</orphan>\n")
    out.append(f"        <inode>{int(r['inode'])}</inode>\n")
    if meta in META_TYPES:
        out.append(f"        <meta_type>{META_TYPES[meta]}</meta_type>\n")
    for tag in ("mtime", "ctime", "atime", "crtime"):
        if r[tag] is not None:
            out.append(f"        <{tag}>{iso(r[tag])}</{tag}>\n")
    if r["magic"]:
        out.append(f"        <libmagic>{text(r['magic'])}</libmagic>\n")
    if r["offset"] is not None:
        length = f" len='{int(r['length'])}'" if r["length"] is not None else ""
        out.append(f"        <byte_runs>\n          <byte_run file_offset='0' img_offset='{int(r['offset'])}'{length}/>\n"
                   f"        </byte_runs>\n")
    for algo in ("md5", "sha1", "sha256"):
        if r[algo]:
            out.append(f"        <hashdigest type='{algo}'>{r[algo]}</hashdigest>\n")
    if r["mime"]:
        out.append(f"        <triage:mime>{text(r['mime'])}</triage:mime>\n")
    if r.get("container"):  # an archive member: the archive's own fileobject filename
        out.append(f"        <triage:container>{text(r['container'])}</triage:container>\n")
    if r.get("entropy") is not None:  # measured by the content pass (absent from older results)
        out.append(f"        <triage:entropy>{float(r['entropy']):.4f}</triage:entropy>\n")
    if r["known"]:
        out.append(f"        <triage:known sets={attr(', '.join(r['hashset_hits'] or []))}>{text(r['known'])}</triage:known>\n")
    if r["phash_match"]:
        out.append(f"        <triage:near_duplicate distance='{int(r['phash_distance'])}'>{text(r['phash_match'])}"
                   f"</triage:near_duplicate>\n")
    if r["score"] is not None:
        out.append(f"        <triage:score>{int(r['score'])}</triage:score>\n        <triage:tier>{text(r['tier'])}</triage:tier>\n"
                   "        <triage:reasons>\n")
        for reason in r["reasons"] or []:
            out.append(f"          <triage:reason rule={attr(reason['rule'])} weight='{int(reason['weight'])}'>"
                       f"{text(reason['reason'])}</triage:reason>\n")
        out.append("        </triage:reasons>\n")
    out.append("      </fileobject>\n")
    w("".join(out))
