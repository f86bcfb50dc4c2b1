"""Defaults live in triage/triage.yaml under ``triage:``, registered with dask.config.

Overrides come from environment variables (``DASK_TRIAGE__CONTENT__BATCH_BYTES``)
and then CLI flags. Read with :func:`get` when needed, never at import time. The
YAML file is read and registered once per process; :func:`get` then only asks
``dask.config``, so ``dask.config.set`` overrides still apply at every call.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import dask.config
import yaml
from dask.utils import parse_bytes

HERE = Path(__file__).parent


@functools.cache
def ensure_defaults() -> None:
    """Register triage.yaml's defaults with dask.config, once per process."""
    defaults = yaml.safe_load((HERE / "triage.yaml").read_text())
    dask.config.update_defaults(defaults)


def get(key: str) -> Any:
    ensure_defaults()
    return dask.config.get(f"triage.{key}")


def get_bytes(key: str) -> int:
    value = get(key)
    return int(parse_bytes(value)) if isinstance(value, str) else int(value)
