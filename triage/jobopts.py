"""Run options given to ``triage submit`` (``--no-vss``), kept with the job until a dispatcher starts it.

A queued job may run hours later in another process, so an option that changes how its
images are triaged is stored beside its results folder, in ``<home>/jobs/<job id>/options.json``
(written under a temporary name and renamed, so a dispatcher never reads half a file), as the
``triage.yaml`` keys it overrides. The dispatcher applies them with ``dask.config.set`` while it
plans the job's runs (:class:`triage.settings.RunSettings` reads them then), so two jobs with
different options can run side by side. They go with the job folder when it is cancelled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from triage.rules.errors import InputError

FILE = "options.json"


def _path(home: Path, job_id: str) -> Path:
    if not job_id or "/" in job_id or job_id.startswith("."):
        raise InputError(f"not a job id: {job_id!r}")
    return Path(home) / "jobs" / job_id / FILE


def save(home: Path, job_id: str, overrides: dict[str, Any]) -> None:
    """Keep ``overrides`` (config keys under ``triage.``, e.g. ``{"vss.enabled": False}``) for the job."""
    path = _path(home, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(overrides, sort_keys=True))
    os.replace(tmp, path)


def config_for(home: Path, job_id: str) -> dict[str, Any]:
    """The job's overrides as ``dask.config.set`` keys ({} when it was submitted without options)."""
    try:
        stored = json.loads(_path(home, job_id).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{_path(home, job_id)}: job options unreadable: {exc}") from exc
    return {f"triage.{k}": v for k, v in stored.items()}
