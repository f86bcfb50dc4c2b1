"""Where per-user triage state lives (hash sets today), resolved the same way everywhere.

The CLI's ``--home``, the workers opening :class:`triage.rules.matcher.KnownItems`
and the control plane all call :func:`state_dir`, so a set imported by one is found
by the others. Resolving a path touches nothing on disk: workers may call it freely.
"""

from __future__ import annotations

import os
from pathlib import Path

#: environment variable that overrides the state directory (below an explicit --home)
ENV_HOME = "TRIAGE_HOME"


def state_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: ``home`` if given, else ``$TRIAGE_HOME``, else the XDG data dir.

    ``$XDG_DATA_HOME/triage`` is used only when ``XDG_DATA_HOME`` is an absolute
    path (the XDG spec says to ignore relative ones); otherwise ``~/.local/share/triage``.
    The result is absolute so it means the same thing in every worker process.
    """
    if home is not None and str(home) != "":
        return Path(home).expanduser().absolute()
    env = os.environ.get(ENV_HOME, "")
    if env:
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "triage"
    return Path.home() / ".local" / "share" / "triage"


def hashsets_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """``<state dir>/hashsets``: the catalog and one folder per known-item set."""
    return state_dir(home) / "hashsets"
