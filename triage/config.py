"""Defaults live in triage/triage.yaml under ``triage:``, registered with dask.config.

Overrides come from environment variables (``DASK_TRIAGE__CONTENT__BATCH_BYTES``)
and then CLI flags. Read with :func:`get` when needed, never at import time. The
YAML file is parsed once per process; :func:`get` then only asks
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
def _defaults() -> dict[str, Any]:
    """triage.yaml, parsed once per process (by libyaml where PyYAML has it: a file the package ships)."""
    return yaml.load((HERE / "triage.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def ensure_defaults() -> None:
    """Register triage.yaml's defaults with dask.config (so ``dask config`` tools see them)."""
    if "triage" not in dask.config.config:
        dask.config.update_defaults(_defaults())


def _default(key: str) -> Any:
    node: Any = _defaults()["triage"]
    for part in key.split("."):
        node = node[part]
    return node


def get(key: str) -> Any:
    """``triage.<key>``: a ``dask.config.set`` or environment override, else the YAML default.

    The default is looked up in the parsed YAML, not only in dask.config: a ``dask.config.set``
    context entered before the defaults were registered removes, on exit, the keys it found
    absent, and a default must not vanish with them.
    """
    ensure_defaults()
    return dask.config.get(f"triage.{key}", default=_default(key))


def get_bytes(key: str) -> int:
    value = get(key)
    return int(parse_bytes(value)) if isinstance(value, str) else int(value)
