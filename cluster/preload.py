"""Start-up of the processes triage owns: its CLI and the workers of the LocalCluster it starts itself.

pyarrow, when pandas is installed, imports it the first time it builds an array from Python objects (to
ask whether the object is a pandas one): ~0.5 CPU s in every such process, ~0.9 s of a small `triage run`'s
wall time on 2 cores (driver and both workers pay it at once). triage never uses pandas, so these
processes mark it unavailable before pyarrow asks; pyarrow then treats it as not installed.

Workers of a running `dask scheduler` are not touched: other work on a shared cluster may need pandas,
and a long-lived worker pays the import once.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from typing import Any


class _NoPandas(MetaPathFinder):
    """``import pandas`` raises ModuleNotFoundError, exactly as where pandas is not installed (the README's
    install): a ``None`` in ``sys.modules`` would not do, pyarrow's Cython import takes it for the module."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (triage does not use pandas)", name=name)
        return None


def without_pandas() -> None:
    """``import pandas`` fails in this process as if it were not installed, unless it was imported already."""
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


def dask_setup(worker: Any) -> None:
    """distributed's preload hook, run as each LocalCluster worker starts."""
    without_pandas()
