"""Durations as a person reads them, the same in the terminal (``triage status``) and the dashboard."""

from __future__ import annotations


def human_seconds(s: float | None) -> str:
    """``95`` -> ``1m35s``; None (no ETA yet) -> ``-``."""
    if s is None:
        return "-"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
