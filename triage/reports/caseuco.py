"""CASE/UCO JSON-LD (CASE 1.5): the image, partitions, filesystems, files, the triage action and the ranking.

Shapes chosen to pass ``case_validate`` with no warnings: every node has an IRI
(facets and hashes too, which UCO requires), hashes are ``types:Hash`` with a
``HashNameVocab`` method and an ``xsd:hexBinary`` value, each file is
``Contained_Within`` its filesystem (or its partition when carved or no
filesystem was found), and the triage is a ``case-investigation:InvestigativeAction``
whose instrument is a ``tool:ConfiguredTool`` carrying its configuration (command,
rule files and hash sets with their sha256). The ranking is an
``analysis:Analysis`` with one ``AnalyticResult`` per notable or likely-notable file
(and one for the device), each classifying its object by tier with the score as
confidence. IRIs are derived from the image's sha256 and row numbers, so the same
results give the same document.

Written node by node into the ``@graph`` array: memory does not grow with files.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import uuid
from typing import IO, Any

from triage.reports import WRITERS, Context, iso

CONTEXT = {
    "case-investigation": "https://ontology.caseontology.org/case/investigation/",
    "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
    "uco-analysis": "https://ontology.unifiedcyberontology.org/uco/analysis/",
    "uco-configuration": "https://ontology.unifiedcyberontology.org/uco/configuration/",
    "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
    "uco-identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
    "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
    "uco-tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
    "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
    "uco-vocabulary": "https://ontology.unifiedcyberontology.org/uco/vocabulary/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
#: the document's IRI maker while one is being written (a context variable, not module state)
IRI: contextvars.ContextVar[Iris] = contextvars.ContextVar("IRI")
HASH_NAMES = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256"}
COLUMNS = ["partition", "path", "name", "type", "size", "deleted", "source", "mtime", "atime", "ctime", "crtime",
           "md5", "sha1", "sha256", "mime", "score", "tier", "reasons", "entropy"]


class Iris:
    """Deterministic IRIs ending in a UUID (as UCO suggests): ``kb:<name>-<uuid5(document, anchor)>``.

    The anchor is the name's first two parts (``file-12`` for ``file-12-hash-md5``): a file's
    facets, hashes and relationship share its UUID and differ by name, so one SHA-1 serves ten IRIs.
    """

    def __init__(self, document: str) -> None:
        self.ns = uuid.uuid5(uuid.NAMESPACE_URL, document).bytes
        self.anchor, self.suffix, self.within = "", "", "\0"

    def __call__(self, ref: str) -> str:
        # a file's ten names in a row share a two-part anchor: ``file-12`` and ``file-12-...`` need no split
        if ref.startswith(self.within) or ref == self.anchor:
            return f"kb:{ref}-{self.suffix}"
        anchor = "-".join(ref.split("-", 2)[:2])
        if anchor != self.anchor:  # uuid.uuid5(ns, anchor), spelled out without a UUID object
            b = bytearray(hashlib.sha1(self.ns + anchor.encode("utf-8")).digest()[:16])
            b[6], b[8] = (b[6] & 0x0F) | 0x50, (b[8] & 0x3F) | 0x80
            x = b.hex()
            self.anchor, self.suffix = anchor, f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"
            # only a two-part anchor is the whole anchor of every name it starts ("image-facet" is its own)
            self.within = anchor + "-" if "-" in anchor else "\0"
        return f"kb:{ref}-{self.suffix}"


def _id(ref: str) -> dict[str, str]:
    return {"@id": IRI.get()(ref)}


def _typed(kind: str, value: Any) -> dict[str, Any]:
    return {"@type": kind, "@value": value}


def _hashes(owner: str, values: dict[str, str | None]) -> list[dict[str, Any]]:
    return [{"@id": IRI.get()(f"{owner}-{algo}"), "@type": "uco-types:Hash",
             "uco-types:hashMethod": HASH_NAMES[algo],  # plain xsd:string since UCO 1.4
             "uco-types:hashValue": _typed("xsd:hexBinary", value)}
            for algo, value in values.items() if value]


def _contained(ref: str, source: str, target: str) -> dict[str, Any]:
    return {"@id": IRI.get()(f"{ref}"), "@type": "uco-observable:ObservableRelationship", "uco-core:source": _id(source),
            "uco-core:target": _id(target), "uco-core:kindOfRelationship": "Contained_Within",
            "uco-core:isDirectional": True}


@WRITERS.register("case")
class CaseReport:
    NAME = "case"
    FILENAME = "report.case.jsonld"
    DESCRIPTION = "CASE/UCO 1.5 JSON-LD: image, partitions, filesystems, files, the triage action, the ranking"
    TEXT = True

    def write(self, ctx: Context, fh: IO[str]) -> None:
        image = ctx.results.image()
        base = f"urn:evidence-triage:{(image.get('sha256') or 'unhashed')[:32]}:"
        IRI.set(Iris(base))
        fh.write(json.dumps({**CONTEXT, "kb": base}, sort_keys=True).join(['{"@context": ', ', "@graph": [\n']))
        encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: json.dumps with options builds one a call
        parts: list[str] = []
        wrote = False

        def node(obj: dict[str, Any]) -> None:
            parts.append(encode(obj))  # key order is fixed by the code
            if len(parts) >= 4096:  # written in slices of nodes, not a write call each
                flush()

        def flush() -> None:
            nonlocal wrote
            if parts:
                fh.write((",\n" if wrote else "") + ",\n".join(parts))
                wrote = True
                parts.clear()

        for obj in _header(ctx, image):
            node(obj)
        holders = {}
        for v in ctx.results.volumes().to_pylist():
            part = f"partition-{v['index']}"
            node({"@id": IRI.get()(f"{part}"), "@type": "uco-observable:DiskPartition", "uco-core:hasFacet": [{
                "@id": IRI.get()(f"{part}-facet"), "@type": "uco-observable:DiskPartitionFacet",
                "uco-observable:partitionOffset": int(v["start"]), "uco-observable:partitionLength": int(v["length"]),
                "uco-observable:partitionID": v["slot"], "uco-observable:diskPartitionType": v["description"]}]})
            node(_contained(f"{part}-in-image", part, "image"))
            holders[v["index"]] = part
            if v["filesystem"]:
                fs = f"filesystem-{v['index']}"
                node({"@id": IRI.get()(f"{fs}"), "@type": "uco-observable:FileSystem", "uco-core:hasFacet": [{
                    "@id": IRI.get()(f"{fs}-facet"), "@type": "uco-observable:FileSystemFacet",
                    "uco-observable:fileSystemType": v["filesystem"]}]})
                node(_contained(f"{fs}-in-{part}", fs, part))
                holders[v["index"]] = fs
        results = ["device-ranking"]
        row_id = 0
        for batch in ctx.batches(COLUMNS):
            for r in batch.to_pylist():
                row_id += 1
                f = f"file-{row_id}"
                node(_file(f, r))
                holder = holders.get(r["partition"], "image")
                node(_contained(f"{f}-in", f, "image" if r["source"] == "carved" and holder.startswith("filesystem")
                                else holder))
                if r.get("tier") in ("notable", "likely-notable"):
                    node(_result(f"result-{row_id}", f, r["tier"], r["score"], r["reasons"] or []))
        ranking = ctx.ranking
        if ranking:
            node(_result("device-ranking", "image", ranking["tier"], ranking["score"],
                         [{"rule": "device", "weight": 0, "reason": t} for t in ranking.get("reasons", [])]))
        node({"@id": IRI.get()("ranking"), "@type": "uco-analysis:Analysis", "uco-core:name": "ranking",
              "uco-core:description": "score, tier and reasons of every file from the ranking rules in force",
              "uco-action:instrument": _id("tool"), "uco-action:object": [_id("image")],
              "uco-action:result": [_id(x) for x in results if ranking]})
        flush()
        fh.write("\n]}\n")


def _header(ctx: Context, image: dict[str, Any]) -> list[dict[str, Any]]:
    s, ranking = ctx.summary, ctx.ranking
    entries = [("command", " ".join(ctx.command))]
    entries += [(f"rule file {rf.get('path')}", rf.get("sha256", "")) for rf in ranking.get("rules", [])]
    entries += [(f"hash set {h['name']} ({h['category']})", h.get("updated_at", "")) for h in ranking.get("hashsets", [])]
    config = {"@id": IRI.get()("configuration"), "@type": "uco-configuration:Configuration",
              "uco-configuration:configurationEntry": [
                  {"@id": IRI.get()(f"configuration-entry-{i}"), "@type": "uco-configuration:ConfigurationEntry",
                   "uco-configuration:itemName": name, "uco-configuration:itemValue": str(value)}
                  for i, (name, value) in enumerate(entries, 1)]}
    tool = {"@id": IRI.get()("tool"), "@type": "uco-tool:ConfiguredTool", "uco-core:name": "evidence-triage",
            "uco-tool:version": ctx.tool.split()[-1], "uco-configuration:usesConfiguration": _id("configuration")}
    img = {"@id": IRI.get()("image"), "@type": "uco-observable:Image", "uco-core:hasFacet": [
        {"@id": IRI.get()("image-facet"), "@type": "uco-observable:ImageFacet", "uco-observable:imageType": image.get("format") or "raw"},
        {"@id": IRI.get()("image-file"), "@type": "uco-observable:FileFacet", "uco-observable:fileName": image.get("path") or "",
         "uco-observable:sizeInBytes": int(image.get("size") or 0)},
        {"@id": IRI.get()("image-content"), "@type": "uco-observable:ContentDataFacet",
         "uco-observable:sizeInBytes": int(image.get("size") or 0),
         "uco-observable:hash": _hashes("image-hash", {"md5": image.get("md5"), "sha256": image.get("sha256")})}]}
    out = [config, tool, img]
    action = {"@id": IRI.get()("triage"), "@type": "case-investigation:InvestigativeAction", "uco-core:name": "triage",
              "uco-action:instrument": _id("tool"), "uco-action:object": [_id("image")],
              "uco-action:result": [_id("ranking")]}
    for key, prop in (("started", "uco-action:startTime"), ("finished", "uco-action:endTime")):
        if s.get(key):
            action[prop] = _typed("xsd:dateTime", s[key])
    if ctx.examiner:
        out.append({"@id": IRI.get()("examiner"), "@type": "uco-identity:Person", "uco-core:name": ctx.examiner})
        action["uco-action:performer"] = _id("examiner")
    out.append(action)
    if ctx.case_name:
        out.append({"@id": IRI.get()("investigation"), "@type": "case-investigation:Investigation",
                    "uco-core:name": ctx.case_name, "uco-core:object": [_id("triage"), _id("image")]})
    if ctx.exhibit:
        out.append({"@id": IRI.get()("exhibit"), "@type": "case-investigation:ProvenanceRecord",
                    "case-investigation:exhibitNumber": ctx.exhibit, "uco-core:object": [_id("image")]})
    return out


def _file(ref: str, r: dict[str, Any]) -> dict[str, Any]:
    facet: dict[str, Any] = {"@id": IRI.get()(f"{ref}-file"), "@type": "uco-observable:FileFacet",
                             "uco-observable:fileName": r["name"], "uco-observable:filePath": r["path"],
                             "uco-observable:sizeInBytes": int(r["size"]),
                             "uco-observable:isDirectory": r["type"].startswith("d") or r["type"].endswith("/d"),
                             "uco-observable:allocationStatus": r["source"]}
    for key, prop in (("mtime", "modifiedTime"), ("atime", "accessedTime"), ("ctime", "metadataChangeTime"),
                      ("crtime", "observableCreatedTime")):
        if r[key] is not None:
            facet[f"uco-observable:{prop}"] = _typed("xsd:dateTime", iso(r[key]))
    facets = [facet]
    hashes = _hashes(f"{ref}-hash", {a: r[a] for a in HASH_NAMES})
    if hashes or r["mime"]:
        content: dict[str, Any] = {"@id": IRI.get()(f"{ref}-content"), "@type": "uco-observable:ContentDataFacet",
                                   "uco-observable:sizeInBytes": int(r["size"])}
        if hashes:
            content["uco-observable:hash"] = hashes
        if r["mime"]:
            content["uco-observable:mimeType"] = r["mime"]
        if r.get("entropy") is not None:
            content["uco-observable:entropy"] = _typed("xsd:decimal", f"{float(r['entropy']):.4f}")
        facets.append(content)
    return {"@id": IRI.get()(f"{ref}"), "@type": "uco-observable:File", "uco-core:hasFacet": facets}


def _result(ref: str, target: str, tier: str, score: int, reasons: list[dict[str, Any]]) -> dict[str, Any]:
    statement = f"score {score} ({tier}): " + "; ".join(f"{x['rule']} {x['weight']:+d}: {x['reason']}" for x in reasons)
    return {"@id": IRI.get()(f"{ref}"), "@type": "uco-analysis:AnalyticResult", "uco-core:statement": statement,
            "uco-analysis:originatingAnalysis": _id("ranking"), "uco-analysis:resultContent": [_id(target)],
            "uco-core:hasFacet": [{"@id": IRI.get()(f"{ref}-facet"), "@type": "uco-analysis:ArtifactClassificationResultFacet",
                                   "uco-analysis:classification": [{
                                       "@id": IRI.get()(f"{ref}-class"), "@type": "uco-analysis:ArtifactClassification",
                                       "uco-analysis:class": tier,
                                       "uco-analysis:classificationConfidence": _typed("xsd:decimal",
                                                                                      f"{score / 100:.2f}")}]}]}
