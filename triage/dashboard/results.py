"""What a job's page shows from its results folder, and the only files the dashboard serves.

* Partitions and filesystems from each image's ``volumes.parquet``; counts, problems and the
  device ranking (``ranking``: score, tier, reasons, when the results carry one) from its
  ``summary.json``.
* The top-ranked items from ``files.parquet`` (columns ``score``/``tier``/``reasons`` when
  the results were ranked): path, partition, size, hashes, known-item hits and reasons.
  Never a picture: no route serves file content from the evidence or from ``carved/``
  (examiner welfare, and a page must not become a viewer of known-bad material).
* :func:`report_files` lists the files a page may link (regular files, not links, at the
  top of the results folder and of each image's folder, not ``carved/``, not hidden
  staging names); :func:`resolve_report` serves a name only if it is in that list, so
  ``..``, absolute paths, symlinks and everything outside the job's folder are refused
  without any path arithmetic to get wrong.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TOP_COLUMNS = ("partition", "path", "size", "md5", "sha1", "sha256", "known", "phash_match", "phash_distance",
               "source", "deleted", "score", "tier", "reasons")
SKIP_DIRS = {"carved"}


@dataclass
class ImageResults:
    """One image's folder in a job's results."""

    name: str                       # "" for a single-image job (the results folder itself)
    folder: Path
    summary: dict[str, Any] = field(default_factory=dict)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    top: list[dict[str, Any]] = field(default_factory=list)
    ranked: bool = False            # files.parquet has the ranking columns
    error: str | None = None

    @property
    def ranking(self) -> dict[str, Any] | None:
        r = self.summary.get("ranking")
        return r if isinstance(r, dict) else None


def image_dirs(results: Path) -> list[tuple[str, Path]]:
    """(name, folder) of each image of a job: the folder itself, or one subfolder per image."""
    if (results / "summary.json").is_file():
        return [("", results)]
    try:
        subs = sorted(p for p in results.iterdir() if p.is_dir() and not p.is_symlink()
                      and (p / "summary.json").is_file())
    except OSError:
        return []
    return [(p.name, p) for p in subs]


def report_files(results: Path) -> list[str]:
    """Relative names of the files of a job's results a page may link to."""
    out: list[str] = []
    folders = [("", results)] + [(n, p) for n, p in image_dirs(results) if n]
    for prefix, folder in folders:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") or e.name in SKIP_DIRS:
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out.append(f"{prefix}/{e.name}" if prefix else e.name)
    return out


def resolve_report(results: Path, name: str) -> Path | None:
    """The file ``name`` names in the job's results, only if a page lists it; else None."""
    if name not in report_files(results):
        return None
    path = results / name
    try:
        real, root = path.resolve(strict=True), results.resolve(strict=True)
    except OSError:
        return None
    return real if real.is_relative_to(root) and real.is_file() else None


def load(results: Path, top_n: int = 25) -> list[ImageResults]:
    """Every image's summary, volumes and top items; unreadable parts become ``error``."""
    out = []
    for name, folder in image_dirs(results):
        img = ImageResults(name, folder)
        try:
            img.summary = json.loads((folder / "summary.json").read_text(errors="replace"))
            img.volumes = _volumes(folder / "volumes.parquet")
            img.top, img.ranked = _top(folder / "files.parquet", top_n)
        except (OSError, ValueError) as exc:
            img.error = f"{folder.name}: {exc}"
        except Exception as exc:  # noqa: BLE001 - pyarrow raises its own errors for damaged files
            img.error = f"{folder.name}: {type(exc).__name__}: {exc}"
        out.append(img)
    return out


def _volumes(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _top(path: Path, n: int) -> tuple[list[dict[str, Any]], bool]:
    """The ``n`` highest-scored rows (score descending, then path), or ([], False) unranked."""
    if not path.is_file():
        return [], False
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    if "score" not in names:
        return [], False
    table = pq.read_table(path, columns=[c for c in TOP_COLUMNS if c in names])
    idx = pc.select_k_unstable(table, k=min(n, table.num_rows),
                               sort_keys=[("score", "descending")]) if table.num_rows else []
    rows = table.take(idx).to_pylist() if len(idx) else []
    rows.sort(key=lambda r: (-(r.get("score") or 0), str(r.get("path"))))
    return rows, True


def reasons_text(reasons: Any) -> list[str]:
    """Reasons in whatever shape the ranking wrote them: strings, or records with a weight."""
    if reasons is None:
        return []
    if isinstance(reasons, str):
        try:
            reasons = json.loads(reasons)
        except ValueError:
            return [reasons]
    if isinstance(reasons, dict):
        reasons = [reasons]
    out = []
    for r in reasons if isinstance(reasons, (list, tuple)) else [reasons]:
        if isinstance(r, dict):
            text = r.get("reason") or r.get("text") or r.get("rule") or r.get("name") or json.dumps(r, sort_keys=True)
            weight = r.get("weight")
            out.append(f"{text} ({weight:+g})" if isinstance(weight, (int, float)) else str(text))
        else:
            out.append(str(r))
    return out


class Rankings:
    """Device rankings of finished jobs for the backlog rows, read once per summary.json change."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._cache: dict[Path, tuple[float, dict[str, Any] | None]] = {}

    def of(self, summary: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The ranking of each image of a job: from the image's summary.json (current, also after
        ``triage rank`` re-ranked it), else from the queue's copy of the summary made at finish."""
        out = []
        for img in (summary or {}).get("images", []) or []:
            if not isinstance(img, dict):
                continue
            rk = self._read(Path(str(img["out"])) / "summary.json") if img.get("out") else None
            if not isinstance(rk, dict):
                rk = img.get("ranking")
            if isinstance(rk, dict):
                out.append(rk)
        return out

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        hit = self._cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        try:
            rk = json.loads(path.read_text(errors="replace")).get("ranking")
        except (OSError, ValueError, AttributeError):
            rk = None
        if len(self._cache) >= self.size:
            self._cache.clear()
        self._cache[path] = (mtime, rk if isinstance(rk, dict) else None)
        return self._cache[path][1]
