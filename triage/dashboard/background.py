"""The dashboard's background refreshers (cluster panel, backlog history): one daemon thread each."""

from __future__ import annotations

import threading
from typing import ClassVar


class Background:
    """Runs ``_run`` on a daemon thread from :meth:`start` until :meth:`stop`; ``_run`` waits on
    ``self._stop`` between rounds, and ``_close`` releases what the thread held once it has ended."""

    THREAD_NAME: ClassVar[str]

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Background:
        self._thread = threading.Thread(target=self._run, name=self.THREAD_NAME, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close()

    def _run(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass
