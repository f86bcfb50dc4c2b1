"""Start the dashboard: alone (``triage dashboard``) or beside the dispatcher (``triage serve --dashboard``).

The listening socket is bound here, before uvicorn starts, so a busy port or a bad address
is a one-line error and the chosen port is known. Beside ``triage serve`` the dashboard is
a child process, not a thread: page rendering then never competes with the dispatcher's
event loop for the GIL, and a killed dispatcher's dashboard notices its parent is gone and
exits rather than lingering.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from triage import config
from triage.dashboard.security import (DashboardError, Guard, ensure_token, is_loopback, loopback_hosts,
                                       parse_bind, token_path)

log = logging.getLogger(__name__)

PARENT_ENV = "TRIAGE_DASHBOARD_PARENT"


@dataclass(frozen=True)
class Plan:
    """What a dashboard will do, checked before anything starts."""

    home: Path
    host: str
    port: int
    token: str | None          # None: loopback, no token asked
    token_made: bool           # made now: show it, once

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def plan(home: Path, bind: str | None, *, new_token: bool = False) -> Plan:
    """Parse the address and, beyond loopback, get the token (or refuse with DashboardError)."""
    host, port = parse_bind(bind or str(config.get("dashboard.bind")))
    if is_loopback(host):
        return Plan(home, host, port, None, False)
    if new_token:
        token_path(home).unlink(missing_ok=True)
    token, made = ensure_token(home)
    return Plan(home, host, port, token, made)


def _listen(p: Plan) -> socket.socket:
    family = socket.AF_INET6 if ":" in p.host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(p.host, p.port, family if p.host != "localhost" else 0, socket.SOCK_STREAM)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        raise DashboardError(f"{p.host}:{p.port}: cannot listen: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def run(p: Plan, announce: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or until the parent ``triage serve`` is gone)."""
    import uvicorn

    from triage.dashboard.app import Settings, create_app

    sock = _listen(p)
    port = sock.getsockname()[1]
    p = Plan(p.home, p.host, port, p.token, p.token_made)
    settings = Settings(home=p.home, page_size=int(config.get("dashboard.page-size")),
                        refresh_seconds=float(config.get("dashboard.refresh-seconds")),
                        cluster_seconds=float(config.get("dashboard.cluster-seconds")),
                        sample_seconds=float(config.get("dashboard.sample-seconds")), token=p.token)
    app = Guard(create_app(settings), token=p.token,
                loopback_hosts=loopback_hosts(p.host, port) if p.token is None else None)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=3))
    _watch_parent(server)
    if announce is not None:
        announce(p.url)
    server.run(sockets=[sock])


def _watch_parent(server: object) -> None:
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return

    def watch() -> None:
        while not getattr(server, "should_exit", False):
            if os.getppid() != int(parent):
                log.info("the dispatcher that started this dashboard is gone; stopping")
                server.should_exit = True  # type: ignore[attr-defined]
                return
            threading.Event().wait(1.0)

    threading.Thread(target=watch, name="dashboard-parent", daemon=True).start()


class Beside:
    """The dashboard as a child process of ``triage serve``."""

    def __init__(self, p: Plan) -> None:
        self.plan = p
        cmd = [sys.executable, "-m", "triage.cli.main", "dashboard", "--bind", f"{p.host}:{p.port}",
               "--home", str(p.home)]
        self.proc = subprocess.Popen(cmd, env={**os.environ, PARENT_ENV: str(os.getpid())},
                                     stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def beside(home: Path, bind: str, out: Callable[[str], None]) -> Beside:
    """Check the address and token now (so ``triage serve`` refuses to start on a bad one),
    then start the dashboard process; ``out`` shows the URL and a token made now."""
    p = plan(home, bind)
    if p.token_made:
        out(f"dashboard token (shown once; kept in {token_path(home)}): {p.token}")
    out(f"dashboard: {p.url}")
    return Beside(p)
