"""Who may see and change the backlog through the dashboard, and what a page may run.

* **Bind**: loopback (127.0.0.0/8, ::1, ``localhost``) by default. Any other address needs
  the access token: generated once into ``<state dir>/dashboard.token`` (mode 0600, shown
  once when made), sent as ``Authorization: Bearer``, ``X-Triage-Token`` or the cookie set
  by ``/login``. A token file anyone else can read is refused: the dashboard does not start.
* **Host check** on loopback: a page of another site resolving its own name to 127.0.0.1
  (DNS rebinding) is answered 421, so it cannot read the backlog through the victim's browser.
* **CSRF**: a random cookie (SameSite=Strict, HttpOnly) must come back as the ``csrf`` form
  field of every POST (double submit), and a POST whose Origin is another site is refused.
* **Headers** on every answer: a Content-Security-Policy with no inline script or style
  (``script-src 'self'``), no framing, no sniffing, no referrer.
* :func:`show` makes any text printable before the template escapes it: control
  characters and bytes that were not UTF-8 appear as ``\\xNN``, never raw.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from triage.rules.errors import InputError, TriageError

TOKEN_FILE = "dashboard.token"
TOKEN_COOKIE = "triage_token"
CSRF_COOKIE = "triage_csrf"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make Chromium send "Origin: null" on our own POSTs
    (b"x-robots-tag", b"noindex"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
#: paths served without the token: the login form and the files it needs
OPEN_PATHS = ("/login", "/static/")

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


class DashboardError(TriageError):
    """The dashboard cannot start as asked (bind, token file); exit code 2."""

    exit_code = 2


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``PORT`` (loopback) → (host, port)."""
    text = text.strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\[\]]*):(\d+)|(\d+)", text)
    if not m:
        raise DashboardError(f"{text!r}: not an address to bind (like 127.0.0.1:8765 or [::1]:8765)")
    host = m.group(1) or m.group(3) or ("127.0.0.1" if m.group(5) else "")
    port = int(m.group(2) or m.group(4) or m.group(5))
    if not host or not 0 <= port <= 65535:
        raise DashboardError(f"{text!r}: needs a host and a port 0-65535")
    return host, port


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_path(home: Path) -> Path:
    return Path(home) / TOKEN_FILE


def ensure_token(home: Path) -> tuple[str, bool]:
    """The access token, made now if there is none: (token, made_now).

    Refuses (DashboardError) a token file that is not a regular file of ours with mode
    0600, or that is empty: anyone who can read it can drive the queue."""
    path = token_path(home)
    Path(home).mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        return _read_token(path), False
    except OSError as exc:
        raise DashboardError(f"{path}: cannot create the dashboard token: {exc.strerror or exc}") from exc
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, True


def _read_token(path: Path) -> str:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise DashboardError(f"{path}: not a regular file; refusing to use it as the dashboard token")
        if st.st_mode & 0o077 or st.st_uid != os.getuid():
            raise DashboardError(f"{path}: readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                                 "refusing to start: 'chmod 600' it or delete it for a new token")
        token = path.read_text().strip()
    except OSError as exc:
        raise DashboardError(f"{path}: cannot read the dashboard token: {exc.strerror or exc}") from exc
    if len(token) < 16:
        raise DashboardError(f"{path}: the dashboard token is empty or too short; delete it for a new one")
    return token


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def show(value: Any) -> str:
    """Printable text of any value: control characters and undecodable bytes as ``\\xNN``.

    The template still escapes the result; this makes sure a name holding ESC, a newline
    or bytes that were not UTF-8 is seen as such, not acted on by the terminal-like parts
    of a browser (bidi and line breaks) or hidden."""
    if value is None:
        return ""
    text = str(value)
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_escape_char, text)


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape of an undecodable byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Guard:
    """ASGI middleware: security headers on every answer, the host check, the token check."""

    def __init__(self, app: Any, *, token: str | None, loopback_hosts: set[str] | None) -> None:
        """``token``: required on every request but the login form (None: not required);
        ``loopback_hosts``: the Host names accepted (None: any)."""
        self.app = app
        self.token = token
        self.hosts = loopback_hosts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}

        async def send_secured(message: dict) -> None:
            if message["type"] == "http.response.start":
                own = [h for h in message.get("headers", [])]
                has_csp = any(k.lower() == b"content-security-policy" for k, _ in own)
                extra = [h for h in HEADERS if not (has_csp and h[0] == b"content-security-policy")]
                message = {**message, "headers": [*own, *extra]}
            await send(message)

        if self.hosts is not None and _host_name(headers.get("host", "")) not in self.hosts:
            await _plain(send_secured, 421, "this dashboard answers only to its loopback address")
            return
        path = scope.get("path", "")
        if self.token and not path.startswith(OPEN_PATHS) and not self._authorised(headers):
            await _plain(send_secured, 401, "a token is needed: open /login, or send it as "
                                            "'Authorization: Bearer TOKEN'")
            return
        await self.app(scope, receive, send_secured)

    def _authorised(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and same(auth[7:].strip(), self.token):
            return True
        if same(headers.get("x-triage-token"), self.token):
            return True
        return same(_cookie(headers.get("cookie", ""), TOKEN_COOKIE), self.token)


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


async def _plain(send: Any, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def loopback_hosts(host: str, port: int) -> set[str]:
    """Host names a browser may send to a loopback-bound dashboard."""
    return {"localhost", "127.0.0.1", "::1", host.lower().strip("[]")}


def check_origin(origin: str | None, host: str | None) -> None:
    """A POST from another site's page is refused (the CSRF cookie is the main defence)."""
    if not origin:
        return
    if origin == "null" or urlsplit(origin).netloc.lower() != (host or "").lower():
        raise InputError("this form was not sent from the dashboard's own page")


def new_csrf() -> str:
    return secrets.token_urlsafe(24)
