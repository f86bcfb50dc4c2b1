"""The dashboard's guards, over HTTP against the real ``triage dashboard`` process.

Loopback by default and no token there; any other bind needs the token (made 0600, shown
once, refused when others can read it); every change is a POST with the CSRF cookie
echoed and the examiner's name; a Content-Security-Policy without inline script on every
answer; hostile names arrive as text; no route serves a file outside a job's results.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from triage.audit import AuditLog
from triage.queue import Queue
from triage_test_fixtures.backlog import triage
from triage_test_fixtures.dashboard import Http, free_port

HOSTILE_CASE = "<img src=x onerror=alert(1)>"
CONTROL_CASE = "OP-\x1b[31mRED\nline"
HOSTILE_EXHIBIT = '"><script>alert(2)</script>'


@pytest.fixture
def home(tmp_path: Path, tiny_disk: Path) -> Path:
    home = tmp_path / "home"
    with Queue.at(home) as q:
        q.submit([tiny_disk], case=HOSTILE_CASE, exhibit=HOSTILE_EXHIBIT, priority="normal", examiner="<b>DC</b>")
        q.submit([tiny_disk], case=CONTROL_CASE, exhibit="E1", priority="low")
        q.submit([tiny_disk], case="OP-PLAIN", exhibit="E2", priority="high")
    # waiting since two hours ago: low has aged to high (one level per 30 minutes, capped at high)
    with Queue.at(home, clock=lambda: time.time() - 7200) as old:
        old.submit([tiny_disk], case="OP-OLD", exhibit="E3", priority="low")
    return home


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names += [name for name, _ in attrs]


def _handlers(html: str) -> list[str]:
    parser = _Attributes()
    parser.feed(html)
    return [n for n in parser.names if n.startswith("on")]


def _csrf(body: bytes) -> str:
    return re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()


def test_loopback_page_escapes_every_name_and_runs_no_inline_script(home: Path, dashboards) -> None:
    d = dashboards(home)
    web = Http(f"http://{d.bind}")
    status, headers, body = web.request("/")
    assert status == 200
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    html = body.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img" not in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "&lt;b&gt;DC&lt;/b&gt;" in html
    assert "OP-\\x1b[31mRED\\x0aline" in html and "\x1b" not in html
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/static/dashboard.js" defer>']
    assert _handlers(html) == []  # no inline event handler on any element
    assert 'id="no-dispatcher"' in html  # nothing holds the dispatcher lock
    # a page of another site whose name resolves to 127.0.0.1 (DNS rebinding) is refused
    assert web.request("/", headers={"Host": "evil.example:80"})[0] == 421
    # the same page as data, and the fragments the page polls
    data = json.loads(web.request("/api/backlog?group=none")[2])
    assert [j["case"] for j in data["jobs"]] == ["OP-OLD", "OP-PLAIN", HOSTILE_CASE, CONTROL_CASE]
    assert data["jobs"][0]["priority"] == "low" and data["jobs"][0]["effective_priority"] == "high"
    assert "aged from low" in html
    # filters, as the form sends them
    filtered = web.request("/?" + urlencode({"state": "queued", "priority": "high", "group": "none"}))[2].decode()
    assert re.findall(r'data-job="(J\d+)"', filtered) == ["J000004", "J000003"]
    assert re.findall(r'data-job="(J\d+)"', web.request("/?case=plain")[2].decode()) == ["J000003"]
    assert web.request("/fragments/backlog")[0] == 200 and web.request("/fragments/cluster")[0] == 200


def test_actions_need_post_csrf_same_origin_and_a_name(home: Path, dashboards) -> None:
    d = dashboards(home)
    web = Http(f"http://{d.bind}")
    target = "J000002"
    status, _, body = web.request("/confirm?" + urlencode({"action": "cancel", "target": target}))
    assert status == 200 and web.cookie("triage_csrf")
    token = _csrf(body)
    form = {"csrf": token, "target": target, "who": "DS Page", "return_to": "/"}
    assert web.request("/actions/cancel")[0] == 405  # a link or an <img> cannot act
    assert web.request("/actions/cancel", urlencode({**form, "csrf": "forged"}).encode())[0] == 403
    assert web.request("/actions/cancel", urlencode(form).encode(),
                       headers={"Origin": "http://evil.example"})[0] == 400
    assert web.request("/actions/cancel", urlencode({**form, "who": " "}).encode())[0] == 400
    bare = Http(f"http://{d.bind}")  # no cookie at all: a cross-site form post
    assert bare.request("/actions/cancel", urlencode(form).encode())[0] == 403
    assert Queue.at(home).get(target).state == "queued" and not list(AuditLog.at(home).records())
    status, headers, _ = web.request("/actions/cancel", urlencode(form).encode(),
                                     headers={"Origin": f"http://{d.bind}"})
    assert status == 303 and headers["location"].startswith("/?notice=")
    assert Queue.at(home).get(target).state == "cancelled"
    [rec] = AuditLog.at(home).records()
    assert rec["action"] == "cancel" and rec["details"]["by"] == "DS Page" and rec["details"]["via"] == "dashboard"
    # an open redirect through return_to is not possible
    status, headers, _ = web.request("/actions/retry", urlencode({**form, "return_to": "//evil.example/"}).encode())
    assert status == 303 and headers["location"].startswith("/?")


def test_beyond_loopback_a_token_is_needed(home: Path, dashboards, tmp_path: Path) -> None:
    port = free_port()
    d = dashboards(home, f"0.0.0.0:{port}")
    token_file = home / "dashboard.token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert d.output().count(token) == 1  # shown once
    web = Http(f"http://127.0.0.1:{port}")
    assert web.request("/")[0] == 401
    assert web.request("/api/backlog")[0] == 401
    assert web.request("/jobs/J000001")[0] == 401
    assert web.request("/", headers={"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
    assert web.request("/", headers={"Authorization": f"Bearer {token}"})[0] == 200
    assert web.request("/", headers={"X-Triage-Token": token})[0] == 200
    # the login form sets the cookie a browser then sends
    status, _, body = web.request("/login")
    assert status == 200
    assert web.request("/login", urlencode({"csrf": _csrf(body), "token": "nope"}).encode())[0] == 401
    status, _, body = web.request("/login")
    assert web.request("/login", urlencode({"csrf": _csrf(body), "token": token}).encode())[0] == 303
    assert web.request("/")[0] == 200
    d.stop()
    # started again: the same token, not shown again
    again = dashboards(home, f"0.0.0.0:{port}")
    assert token not in again.output()
    again.stop()
    # a token file others can read: it refuses to start, and so does serve --dashboard
    os.chmod(token_file, 0o644)
    refused = dashboards(home, f"0.0.0.0:{free_port()}", start=False)
    refused.start(wait=False)
    assert refused.proc.wait(timeout=60) == 2
    assert "refusing to start" in refused.output()
    r = triage(home, "serve", "--workers", "1", "--dashboard", f"0.0.0.0:{free_port()}", check=False, timeout=120)
    assert r.returncode == 2 and "dashboard.token" in r.stderr
    assert Queue.at(home).get("J000001").state == "queued"


def test_only_files_of_the_job_s_results_are_served(home: Path, dashboards, tiny_disk: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    triage(None, "run", tiny_disk, "-o", out, "--workers", "1", "--no-progress", timeout=300)
    (out / "report <i>&1.txt").write_text("a report\n")
    (out / "carved").mkdir(exist_ok=True)
    (out / "carved" / "1234.jpg").write_bytes(b"\xff\xd8\xff picture")
    (out / "passwd").symlink_to("/etc/passwd")
    secret = home / "secret.txt"
    secret.write_text("outside\n")
    with Queue.at(home) as q:  # the job the dispatcher would have run: its results are that folder
        job = q.claim_next("test:1")
        q.finish(job, out, json.loads((out / "summary.json").read_text()), owner="test:1")
    d = dashboards(home)
    web = Http(f"http://{d.bind}")
    status, _, body = web.request(f"/jobs/{job.id}")
    assert status == 200
    page = body.decode()
    assert "report &lt;i&gt;&amp;1.txt" in page and "carved/" not in page and "passwd" not in page
    assert "<img" not in page
    got = web.request(f"/jobs/{job.id}/files/summary.json")
    assert got[0] == 200 and got[2] == (out / "summary.json").read_bytes()
    parquet = web.request(f"/jobs/{job.id}/files/files.parquet")
    assert parquet[0] == 200 and parquet[1]["content-disposition"].startswith("attachment")
    assert web.request(f"/jobs/{job.id}/files/{quote('report <i>&1.txt')}")[2] == b"a report\n"
    for bad in ["../../secret.txt", "..%2F..%2Fsecret.txt", "%2e%2e/%2e%2e/secret.txt", "/etc/passwd",
                "passwd", "carved/1234.jpg", str(secret), "./summary.json/..", "nonexistent.json"]:
        status, _, body = web.request(f"/jobs/{job.id}/files/{bad}")
        assert status == 404, bad
        assert b"outside" not in body and b"root:" not in body and b"picture" not in body
    assert web.request("/jobs/J999999/files/summary.json")[0] == 404
    assert d.proc.poll() is None


def test_the_verb_s_help_and_one_line_refusals(home: Path, dashboards) -> None:
    r = triage(home, "dashboard", "--help")
    assert "example" in r.stdout and "--bind" in r.stdout
    assert "--dashboard" in triage(home, "serve", "--help").stdout
    bad = triage(home, "dashboard", "--bind", "nonsense", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "'nonsense'" in bad.stderr
    busy = dashboards(home)  # its port is taken now
    again = triage(home, "dashboard", "--bind", busy.bind, check=False, timeout=60)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "cannot listen" in again.stderr
