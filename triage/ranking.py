"""Ranking in the control plane: the merge's hook, re-ranking a finished result, reading one safely.

:func:`rank_result` is what the pipeline calls on its merged table before it is
written; :func:`rerank` is ``triage rank OUT``: the same ranking over an existing
``files.parquet`` with no access to the image, written under a temporary name
and renamed, the summary's ``ranking`` updated the same way. The rules are pure
(:mod:`triage.rules.ranking`); what only the control plane knows (the state
directory's rule file and hash sets, the run's clock) is gathered here.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from triage import config
from triage.rules.device import device_ranking
from triage.rules.errors import ResultsError
from triage.rules.home import state_dir
from triage.rules.ranking import RANK_COLUMNS, rank_table
from triage.rules.rulefile import RuleSet, load_rules
from triage.store import MARKER, write_json, write_parquet

log = logging.getLogger(__name__)

#: columns a results table must have to be ranked at all
NEEDED = ("partition", "path", "name", "inode", "type", "size", "source", "mime", "known", "hashset_hits",
          "phash_match", "phash_distance", "md5", "sha1", "sha256", "status")


def rules_in_force(rules: str | Path | None = None, home: str | Path | None = None) -> RuleSet:
    """``--rules FILE``, else config ``ranking.rules``, else ``<state dir>/ranking.yaml``, else the default."""
    path = rules if rules is not None else config.get("ranking.rules")
    return load_rules(path or None, state=state_dir(home))


def known_categories(files: pa.Table, home: str | Path | None) -> pa.Array | None:
    """Per row, the VICS/CAID category of the known-bad entry it matched (the most serious, 1 before 2 ...;
    0 = uncategorised), looked up again in the installed sets for the few known-bad rows only."""
    if files.num_rows == 0 or "known" not in files.schema.names:
        return None
    known = files.column("known").to_pylist()
    rows = [i for i, k in enumerate(known) if k == "known-bad"]
    if not rows:
        return None
    from triage.rules.matcher import KnownItems

    items = KnownItems.open(state_dir(home))
    if not items.sets():
        return None
    take = pa.array(rows, pa.int64())
    hashes = {a: files.column(a).take(take).to_pylist() for a in ("md5", "sha1", "sha256")}
    out: list[int | None] = [None] * files.num_rows
    for i, hits in zip(rows, items.hits(hashes["md5"], hashes["sha1"], hashes["sha256"])):
        cats = [h.entry_category for h in hits if h.category == "known-bad" and h.entry_category is not None]
        if cats:
            positive = [c for c in cats if c > 0]
            out[i] = min(positive) if positive else 0
    return pa.array(out, pa.int32())


def rank_result(files: pa.Table, *, home: str | Path | None = None, now: dt.datetime | None = None,
                rules: str | Path | None = None, since: dt.datetime | None = None,
                volumes: dict[int, str] | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """The merged table ranked, and the device's ``ranking`` for summary.json; ``volumes`` (index -> status)
    names the encrypted volumes left locked, which raise the device (:func:`with_locked_volumes`)."""
    ruleset = rules_in_force(rules, home)
    if since is None and config.get("ranking.since"):
        since = parse_since(str(config.get("ranking.since")))
    ranked = rank_table(files, ruleset, now=now, since=since, categories=known_categories(files, home))
    summary = with_locked_volumes(device_ranking(ranked, ruleset), volumes or {}, ruleset,
                                  config.get("ranking.encrypted-floor"))
    summary["since"] = None if since is None else since.isoformat()
    summary["hashsets"] = hashset_provenance(home)
    return ranked, summary


def locked_volumes(volumes: dict[int, str]) -> list[dict[str, Any]]:
    """The volumes whose status says encrypted and not unlocked ('encrypted: LUKS2 ...; no key given',
    'encrypted? no filesystem and high-entropy data ...'), in index order."""
    return [{"partition": i, "status": st} for i, st in sorted(volumes.items()) if st.startswith("encrypted")]


def with_locked_volumes(ranking: dict[str, Any], volumes: dict[int, str], rules: RuleSet,
                        floor: str | None) -> dict[str, Any]:
    """A device holding an encrypted volume nobody could open is not 'nothing found': what it hides is unknown,
    so it is named first in the reasons and lifted to at least ``floor`` (config ``ranking.encrypted-floor``)."""
    from triage.rules.rulefile import TIERS

    locked = locked_volumes(volumes)
    ranking["encrypted"] = locked
    ranking.setdefault("counts", {})["encrypted_locked"] = len(locked)
    if not locked:
        return ranking
    kinds = ", ".join(f"partition {v['partition']}: " + (v["status"].split(";")[0].split(" (")[0]
                      .removeprefix("encrypted: ") if v["status"].startswith("encrypted:") else "possibly encrypted")
                      for v in locked)
    ranking["reasons"] = [f"{len(locked)} encrypted volume(s) not unlocked ({kinds}): their files are not triaged",
                          *ranking.get("reasons", [])]
    if floor is None:
        return ranking
    if floor not in TIERS[:2]:
        raise ResultsError(f"ranking.encrypted-floor {floor!r}: choose notable or likely-notable (or null)")
    if TIERS.index(floor) < TIERS.index(ranking["tier"]):
        ranking["tier"], ranking["tier_rank"] = floor, TIERS.index(floor)
        ranking["score"] = max(ranking["score"], rules.notable if floor == "notable" else rules.likely)
    return ranking


def hashset_provenance(home: str | Path | None) -> list[dict[str, Any]]:
    """The known-item sets the ranking saw: name, category, entries, when imported, source file hashes."""
    from triage.rules.importer import list_hashsets

    return [{"name": s.name, "category": s.category, "counts": dict(s.counts), "updated_at": s.updated_at,
             "sources": [{"path": src.path, "sha256": src.sha256, "format": src.format} for src in s.sources]}
            for s in list_hashsets(state_dir(home))]


def parse_since(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ResultsError(f"--since {text!r}: not a date (use YYYY-MM-DD or an ISO 8601 time)") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


@dataclass
class Results:
    """A complete results folder: its summary and where its tables are."""

    dir: Path
    summary: dict[str, Any]

    @property
    def files_path(self) -> Path:
        return self.dir / "files.parquet"

    def image(self) -> dict[str, Any]:
        return _json(self.dir / "image.json") if (self.dir / "image.json").is_file() else self.summary["image"]

    def files(self, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.files_path, columns=columns)

    def volumes(self) -> pa.Table:
        path = self.dir / "volumes.parquet"
        if not path.is_file():
            raise ResultsError(f"{path}: missing; the results folder is incomplete")
        return pq.read_table(path)


def open_results(out: str | Path, *, ranked: bool = True) -> Results:
    """A finished results folder, or a one-line error saying why it cannot be used."""
    d = Path(out)
    if not d.is_dir():
        raise ResultsError(f"{d}: no such results folder")
    if not (d / MARKER).is_file():
        raise ResultsError(f"{d}: no {MARKER}: the results are half-written (a run still going, or one that "
                           f"stopped); run 'triage run' again")
    summary = _json(d / MARKER)
    path = d / "files.parquet"
    if not path.is_file():
        raise ResultsError(f"{path}: missing; the results folder is incomplete")
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"{path}: not a readable Parquet table: {exc}") from exc
    missing = [c for c in NEEDED if c not in names]
    if missing:
        raise ResultsError(f"{path}: not a triage files table (no column {missing[0]!r})")
    if ranked and not all(c in names for c in RANK_COLUMNS):
        raise ResultsError(f"{path}: written by an older version, with no ranking; run 'triage rank {d}' first")
    return Results(d, summary)


def rerank(out: str | Path, *, rules: str | Path | None = None, since: dt.datetime | None = None,
           home: str | Path | None = None) -> Results:
    """Rank an existing result again (new rules, another --since) without the image; atomic per file."""
    res = open_results(out, ranked=False)
    files = _arrow_lists(res.files())
    started = res.summary.get("started")
    now = dt.datetime.fromisoformat(started) if started else None
    try:
        vols = res.volumes().select(["index", "status"]).to_pylist()
    except ResultsError:  # no volume table: the device is ranked on its files alone
        vols = []
    ranked, summary = rank_result(files, home=home, now=now, rules=rules, since=since,
                                  volumes={v["index"]: v["status"] for v in vols})
    tmp = res.dir / f".files.parquet.{os.getpid()}.tmp"
    try:
        write_parquet(ranked, tmp)
        os.replace(tmp, res.files_path)
    finally:
        tmp.unlink(missing_ok=True)
    res.summary["ranking"] = summary
    write_summary(res.dir, res.summary)
    return res


def _arrow_lists(table: pa.Table) -> pa.Table:
    """Parquet reads lists back as ``list<element: ...>``; Arrow (and the run) writes ``list<item: ...>``.
    The name is stored in the file's schema, so re-ranked bytes equal the run's only if it is put back."""
    fields = [pa.field(f.name, pa.list_(f.type.value_type), f.nullable, f.metadata)
              if pa.types.is_list(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    tmp = out / f".{MARKER}.{os.getpid()}.tmp"
    try:
        write_json(summary, tmp)
        os.replace(tmp, out / MARKER)
    finally:
        tmp.unlink(missing_ok=True)


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot be read: {exc}") from exc
    if not isinstance(doc, dict):
        raise ResultsError(f"{path}: not a JSON object")
    return doc


@dataclass
class Target:
    """What ``OUT|JOB`` named: the complete results folders, and the job when it was a job id."""

    dirs: list[Path]
    job: Any = None  # triage.queue.Job


def resolve(target: str, home: str | Path | None = None) -> Target:
    """A results folder (or a folder of per-image results), or a queue job id (J000042)."""
    path = Path(target)
    if path.is_dir():
        if (path / MARKER).is_file():
            return Target([path])
        subs = sorted(d for d in path.iterdir() if d.is_dir() and (d / MARKER).is_file())
        if subs:
            return Target(subs)
        open_results(path)  # raises the half-written error naming the folder
    from triage.queue import Queue, parse_job_id

    if parse_job_id(target) is None:
        raise ResultsError(f"{target}: no such results folder or job id")
    job = Queue.at(home).get(target)
    if job.state != "done" or not job.results_dir:
        raise ResultsError(f"{job.id}: is {job.state}; it has no finished results yet")
    found = resolve(job.results_dir, home)
    found.job = job
    return found


def escalation_due(results: list[Any], escalate_on: str | None) -> dict[str, Any] | None:
    """The strongest device ranking among a job's results if it reaches ``escalate_on`` (a tier), else None."""
    from triage.rules.rulefile import TIERS

    if not escalate_on:
        return None
    if escalate_on not in TIERS[:2]:
        raise ResultsError(f"dispatcher.escalate-on {escalate_on!r}: choose notable or likely-notable (or null)")
    rankings = [r.summary.get("ranking") for r in results if r.summary.get("ranking")]
    if not rankings:
        return None
    best = min(rankings, key=lambda k: (TIERS.index(k["tier"]), -k["score"]))
    return best if TIERS.index(best["tier"]) <= TIERS.index(escalate_on) else None
