"""The templates (Jinja2, autoescaped) and the small formatters the pages use.

Every text that came from outside (case, exhibit, examiner, paths, reasons, failures) goes
through the ``show`` filter (control characters and undecodable bytes made visible) and
then Jinja's autoescaping: no page is built from strings, so no name can become markup.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined

from triage.dashboard.results import reasons_text
from triage.dashboard.security import show
from triage.humanize import human_seconds

TIERS = ("notable", "likely-notable", "unknown", "known-good")


def human_bytes(n: float | int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"


def utc(ts: float | str | None, short: bool = False) -> str:
    """Epoch seconds (or an ISO string) as UTC text: the only time zone a custody record knows."""
    if ts is None or ts == "":
        return "-"
    if isinstance(ts, str):
        return ts
    t = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    return t.strftime("%m-%d %H:%M:%SZ" if short else "%Y-%m-%d %H:%M:%SZ")


def pct(done: int, total: int) -> str:
    return f"{100 * done // total}%" if total else "-"


def query(base: dict[str, Any], **change: Any) -> str:
    """``?a=1&b=2`` from the current filters with some changed (empty values dropped; "" if none)."""
    merged = {k: v for k, v in {**base, **change}.items() if v not in ("", None, False)}
    return "?" + urlencode(merged) if merged else ""


def make_env() -> Environment:
    env = Environment(loader=PackageLoader("triage.dashboard", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(show=show, bytes=human_bytes, seconds=human_seconds, utc=utc, reasons=reasons_text)
    env.globals.update(pct=pct, query=query, TIERS=TIERS)
    return env
