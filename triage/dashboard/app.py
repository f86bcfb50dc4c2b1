"""The dashboard's Starlette application: pages, live fragments, report files and actions.

Pages are whole documents; the live parts (``data-live`` elements) are re-fetched by
``static/dashboard.js`` as server-rendered fragments every ``refresh-seconds`` from the
same templates, so a page has one rendering and no markup is built in the browser.
Reads go through :mod:`triage.dashboard.reads` (read-only SQL); every change goes through
:mod:`triage.actions`, the CLI's own path, with the examiner's name from the form.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from triage import actions
from triage.dashboard import results as res
from triage.dashboard.auditview import PriorityMarks, job_records
from triage.dashboard.cluster import ClusterWatcher
from triage.dashboard.history import History
from triage.dashboard.model import STATE_FILTERS, Filters
from triage.dashboard.reads import QueueReader
from triage.dashboard.security import (CSRF_COOKIE, TOKEN_COOKIE, DashboardError, check_origin, new_csrf, same)
from triage.dashboard.views import make_env, query
from triage.queue import PRIORITIES, JobNotFoundError, JobStateError
from triage.rules.errors import InputError, TriageError

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
ACTIONS = ("prioritize", "cancel", "retry")
WHO_COOKIE = "triage_who"
TEXT_TYPES = {".json": "application/json", ".csv": "text/plain", ".txt": "text/plain", ".xml": "text/plain",
              ".jsonld": "text/plain", ".log": "text/plain"}
#: a report opened in the browser runs nothing and loads nothing (its own styles only)
REPORT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'"
#: a backlog fragment is rendered again at least this often even when nothing seems to change
MAX_FRAGMENT_AGE = 2.0


@dataclass
class Settings:
    home: Path
    page_size: int = 50
    refresh_seconds: float = 1.0
    cluster_seconds: float = 2.0
    sample_seconds: float = 10.0
    token: str | None = None          # required on every request when set (non-loopback bind)
    extra: dict[str, Any] = field(default_factory=dict)


class Dashboard:
    """The state one dashboard process keeps: readers, the cluster watcher, the history sampler."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.home = settings.home
        self.reader = QueueReader(self.home)
        self.marks = PriorityMarks(self.home)
        self.rankings = res.Rankings()
        self.watcher = ClusterWatcher(self.home, every=settings.cluster_seconds)
        self.history = History(self.home, every=settings.sample_seconds)
        self.env = make_env()
        self._cache: dict[str, tuple[tuple, float, str]] = {}
        self._cache_lock = threading.Lock()

    # -- rendering ---------------------------------------------------------------------------
    def render(self, request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        csrf = request.cookies.get(CSRF_COOKIE) or new_csrf()
        html = self.env.get_template(name).render(request=request, csrf=csrf, refresh_ms=int(self.s.refresh_seconds * 1000),
                                                  cluster_ms=int(self.s.cluster_seconds * 1000),
                                                  priorities=sorted(PRIORITIES, key=PRIORITIES.get, reverse=True),
                                                  **ctx)
        resp = HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})
        if request.cookies.get(CSRF_COOKIE) != csrf:
            resp.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
        return resp

    def filters(self, request: Request) -> tuple[Filters, dict[str, Any]]:
        q = request.query_params
        state = q.get("state", "")
        prio = q.get("priority", "")
        try:
            page = max(1, int(q.get("page", "1")))
        except ValueError:
            page = 1
        f = Filters(case=q.get("case", "")[:200], state=state if state in STATE_FILTERS else "",
                    priority=prio if prio in PRIORITIES else "", grouped=q.get("group", "case") != "none",
                    page=page, per_page=self.s.page_size)
        base = {"case": f.case, "state": f.state, "priority": f.priority, "group": "" if f.grouped else "none"}
        return f, base

    def backlog_context(self, request: Request) -> dict[str, Any]:
        f, base = self.filters(request)
        page = self.reader.page(f)
        self.marks.refresh()
        counts = self.reader.case_counts(sorted({r.case for r in page.rows})) if f.grouped else {}
        groups: list[dict[str, Any]] = []
        for row in page.rows:
            if not groups or (f.grouped and groups[-1]["case"] != row.case):
                groups.append({"case": row.case if f.grouped else None, "counts": counts.get(row.case), "rows": []})
            groups[-1]["rows"].append(row)
        return {"page": page, "groups": groups, "base": base, "filters": f, "counts": self.reader.counts(),
                "marks": {r.id: self.marks.mark(r.id) for r in page.rows},
                "ranks": {r.id: self.rankings.of(r.summary) for r in page.rows if r.state == "done"},
                "here": (here := "/" + query(base, page=f.page if f.page > 1 else "")),
                "back": quote(here, safe="")}  # job ids need no quoting: J and digits

    def backlog_html(self, request: Request) -> str:
        """The backlog fragment, rendered again only when the queue, the audit log or an ageing
        step says it may differ (or every ``MAX_FRAGMENT_AGE`` s): every open page asks each second."""
        key = request.url.query
        now = time.monotonic()
        mark = (self.reader.change_mark(), _size(self.marks.path))
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == mark and now - hit[1] < MAX_FRAGMENT_AGE:
                return hit[2]
        html = self.env.get_template("_backlog.html").render(**self.backlog_context(request))
        with self._cache_lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = (mark, now, html)
        return html

    def cluster_context(self) -> dict[str, Any]:
        return {"cluster": self.watcher.state, "charts": self.history.charts(),
                "throughput": self.reader.throughput()}


def cpu_timed(endpoint: Any) -> Any:
    """Add ``Server-Timing: cpu;dur=MS``: the CPU this answer took in its thread, a figure a busy
    machine does not inflate the way it inflates wall-clock time (the benchmark reads it)."""

    @functools.wraps(endpoint)
    def wrapped(request: Request) -> Response:
        t0 = time.thread_time()
        resp = endpoint(request)
        resp.headers["server-timing"] = f"cpu;dur={(time.thread_time() - t0) * 1000:.1f}"
        return resp

    return wrapped


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _dash(request: Request) -> Dashboard:
    return request.app.state.dashboard


# -- pages -------------------------------------------------------------------------------------
@cpu_timed
def backlog(request: Request) -> Response:
    d = _dash(request)
    f, base = d.filters(request)
    return d.render(request, "backlog.html", notice=request.query_params.get("notice", "")[:300],
                    cases=d.reader.cases(), filters=f, base=base, backlog=Markup(d.backlog_html(request)),
                    **d.cluster_context())


@cpu_timed
def backlog_fragment(request: Request) -> Response:
    return HTMLResponse(_dash(request).backlog_html(request), headers={"cache-control": "no-store"})


@cpu_timed
def cluster_fragment(request: Request) -> Response:
    d = _dash(request)
    return d.render(request, "_cluster.html", **d.cluster_context())


@cpu_timed
def backlog_json(request: Request) -> Response:
    """The same page as data, for scripts: ``/api/backlog?state=queued&page=2``."""
    d = _dash(request)
    f, _ = d.filters(request)
    page = d.reader.page(f)
    rows = [{k: v for k, v in vars(r).items() if k != "summary"} for r in page.rows]
    return JSONResponse({"total": page.total, "page": f.page, "pages": page.pages, "jobs": rows,
                         "throughput_bytes_per_second": page.throughput_bps, "bytes_waiting": page.bytes_waiting})


@cpu_timed
def job_page(request: Request) -> Response:
    d = _dash(request)
    job = d.reader.job(request.path_params["job"])
    if job is None:
        return d.render(request, "error.html", status=404, message=f"no job {request.path_params['job']!r}")
    d.marks.refresh()
    folder = Path(job.results_dir) if job.results_dir else None
    images = res.load(folder) if folder is not None and folder.is_dir() else []
    files = res.report_files(folder) if folder is not None and folder.is_dir() else []
    return d.render(request, "job.html", job=job, mark=d.marks.mark(job.id), images=images, files=files,
                    notice=request.query_params.get("notice", "")[:300],
                    records=job_records(d.home, job.id), ranks=d.rankings.of(job.summary),
                    here=str(request.url.path))


def job_fragment(request: Request) -> Response:
    d = _dash(request)
    job = d.reader.job(request.path_params["job"])
    if job is None:
        return Response("", status_code=404)
    d.marks.refresh()
    return d.render(request, "_jobstate.html", job=job, mark=d.marks.mark(job.id))


def report_file(request: Request) -> Response:
    d = _dash(request)
    job = d.reader.job(request.path_params["job"])
    folder = Path(job.results_dir) if job is not None and job.results_dir else None
    path = res.resolve_report(folder, request.path_params["name"]) if folder is not None else None
    if path is None:
        return d.render(request, "error.html", status=404, message="no such report file in this job's results")
    name = path.name
    if path.suffix.lower() in (".html", ".htm"):
        return FileResponse(path, media_type="text/html", headers={"content-security-policy": REPORT_CSP})
    if path.suffix.lower() in TEXT_TYPES:
        return FileResponse(path, media_type=f"{TEXT_TYPES[path.suffix.lower()]}; charset=utf-8")
    return FileResponse(path, media_type="application/octet-stream",
                        headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


# -- actions ----------------------------------------------------------------------------------
def confirm(request: Request) -> Response:
    """The confirmation step of an action: says what will change and asks who is doing it."""
    d = _dash(request)
    q = request.query_params
    action, target = q.get("action", ""), q.get("target", "")
    if action not in ACTIONS or not target:
        return d.render(request, "error.html", status=400, message="unknown action or no job/case named")
    job = d.reader.job(target)
    case_counts = d.reader.case_counts([target]).get(target) if job is None else None
    if job is None and case_counts is None:
        return d.render(request, "error.html", status=404, message=f"no job or case {target!r}")
    return d.render(request, "confirm.html", action=action, target=target, job=job, case_counts=case_counts,
                    chosen=q.get("priority", ""), who=request.cookies.get(WHO_COOKIE, ""),
                    return_to=_local(q.get("return_to", "/")))


async def act(request: Request) -> Response:
    d = _dash(request)
    action = request.path_params["action"]
    form = await request.form()
    if not same(str(form.get("csrf", "")), request.cookies.get(CSRF_COOKIE)):
        return d.render(request, "error.html", status=403,
                        message="the form is stale or came from elsewhere (CSRF check failed): open it again")
    try:
        check_origin(request.headers.get("origin"), request.headers.get("host"))
        who = actions.check_who(str(form.get("who", "")))
        target = str(form.get("target", ""))
        if action == "prioritize":
            changed = await run_in_threadpool(actions.prioritize, d.home, target, str(form.get("priority", "")),
                                              who=who, via="dashboard")
            notice = "; ".join(f"{j.id}: {old} → {j.priority}" for j, old in changed)
        elif action == "cancel":
            jobs = await run_in_threadpool(actions.cancel, d.home, target, who=who, via="dashboard")
            notice = "; ".join(f"{j.id}: {'cancel requested' if j.state == 'running' else 'cancelled'}" for j in jobs)
        elif action == "retry":
            job = await run_in_threadpool(actions.retry, d.home, target, who=who, via="dashboard")
            notice = f"{job.id}: queued again (attempt {job.attempts})"
        else:
            return d.render(request, "error.html", status=404, message="unknown action")
    except (JobNotFoundError, JobStateError) as exc:
        return d.render(request, "error.html", status=409 if isinstance(exc, JobStateError) else 404, message=str(exc))
    except InputError as exc:
        return d.render(request, "error.html", status=400, message=str(exc))
    except TriageError as exc:
        return d.render(request, "error.html", status=503, message=str(exc))
    back = _local(str(form.get("return_to", "/")))
    sep = "&" if "?" in back else "?"
    resp = RedirectResponse(f"{back}{sep}{urlencode({'notice': notice[:300]})}", status_code=303)
    resp.set_cookie(WHO_COOKIE, quote(who), samesite="strict", path="/", max_age=30 * 86400)
    return resp


def _local(url: str) -> str:
    """Only a path of this site to go back to after an action (no open redirect)."""
    if not url.startswith("/") or url.startswith("//") or "\\" in url or any(ord(c) < 32 for c in url):
        return "/"
    return url


# -- token login ---------------------------------------------------------------------------------
async def login(request: Request) -> Response:
    d = _dash(request)
    if d.s.token is None:
        return RedirectResponse("/", status_code=303)
    if request.method == "GET":
        return d.render(request, "login.html", failed=False)
    form = await request.form()
    if not same(str(form.get("csrf", "")), request.cookies.get(CSRF_COOKIE)) or not same(
            str(form.get("token", "")).strip(), d.s.token):
        return d.render(request, "login.html", status=401, failed=True)
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(TOKEN_COOKIE, d.s.token, httponly=True, samesite="strict", path="/")
    return resp


def create_app(settings: Settings) -> Starlette:
    dash = Dashboard(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        dash.watcher.start()
        dash.history.start()
        try:
            yield
        finally:
            dash.watcher.stop()
            dash.history.stop()
            dash.reader.close()

    routes = [
        Route("/", backlog),
        Route("/fragments/backlog", backlog_fragment),
        Route("/fragments/cluster", cluster_fragment),
        Route("/api/backlog", backlog_json),
        Route("/jobs/{job}", job_page),
        Route("/fragments/jobs/{job}", job_fragment),
        Route("/jobs/{job}/files/{name:path}", report_file),
        Route("/confirm", confirm),
        Route("/actions/{action}", act, methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(packages=[("triage.dashboard", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dashboard = dash
    return app


__all__ = ["Settings", "create_app", "DashboardError"]
