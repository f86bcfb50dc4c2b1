"""The worker plugin that installs volume keys on every worker (see :mod:`triage.workers.unlock`).

A module of its own because it is the only part of unlocking that needs
``distributed`` at import time: ``triage submit`` reads key options through
:mod:`triage.workers.unlock` and should not pay for importing Dask's client to
do it. Workers unpickle the plugin by this module's name.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from triage.workers.unlock import KEYRING, VolumeKey, forget, install


class Keyring(WorkerPlugin):
    """A Dask worker plugin that installs keys on every worker, present and future.

    Register with ``client.register_plugin(Keyring(keys), name="triage-keyring")``.
    """

    name = KEYRING

    def __init__(self, keys: dict[tuple[str, int], VolumeKey]) -> None:
        self.keys = dict(keys)

    def __repr__(self) -> str:
        return f"Keyring({len(self.keys)} keys, <redacted>)"

    def setup(self, worker: Any = None) -> None:
        install(self.keys)

    def teardown(self, worker: Any = None) -> None:
        forget(self.keys)
