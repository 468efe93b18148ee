"""The console's routes under `/ui/`: read-only pages, a JSON feed for live updates, the login.

Every read of the record runs in a worker thread through the store's read API, so a page never
holds the event loop that serves model traffic. A page that fails is its own 500, logged by
path and exception class; nothing a page does can reach a model request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

import orjson

from turnout.auth.admin import admin_refusal
from turnout.auth.keys import period_start
from turnout.auth.manage import status as key_status
from turnout.console import alarms as record_alarms
from turnout.console import (
    mcp_lock,
    overview,
    pages,
    record_pages,
    requests_page,
    session,
    spend,
    trace_page,
    watch_pages,
)
from turnout.console.fleet_view import alarms, breaker_history, deployments, instances
from turnout.console.html import Markup, e, page
from turnout.console.throttle import LoginThrottle
from turnout.errors import ApiError
from turnout.gateway import Gateway
from turnout.intent.report import build as intent_report
from turnout.migrate.status import status as migration_status
from turnout.server.asgi import Receive, Scope, Send, TooLarge, header_map, read_body
from turnout.store.errors import NoRecordStore, RecordNotFound
from turnout.store.events import MigrationEvent
from turnout.store.fingerprints import (
    AlarmRecord,
    CheckRecord,
    FingerprintTables,
    open_fingerprints,
)
from turnout.store.page import RequestFilter
from turnout.store.read import RecordReader, open_reader

log = logging.getLogger("turnout.console")

PREFIX = "/ui"
_STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
_SECURITY = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
# A replay report is a page of its own: inline styles and its plot, nothing that runs.
_REPORT_CSP = (
    b"default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
)
_MAX_QUERY = 4096
ALARMS_EVERY_S = 30.0
_MAX_LOGIN_BODY = 8192
T = TypeVar("T")


class Console:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        folder = resources.files("turnout.console") / "static"
        self._static = {name: (folder / name).read_bytes() for name in _STATIC}
        self._alarms: list[dict[str, str]] = []
        self._alarms_read_at = -ALARMS_EVERY_S
        self._summary: tuple[float, dict[str, Any]] = (-overview.FRESH_S, {})
        self._throttle = LoginThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        try:
            await self._route(scope, receive, send, path, scope["method"])
        except ApiError as exc:
            title = {400: "Bad request", 404: "Not found"}.get(exc.status, "Not served")
            await self._page(send, exc.status, title, Markup(f"<p>{e(exc.message)}</p>"))
        except Exception as exc:
            log.error("console page %s failed (%s)", path[:120], type(exc).__name__, exc_info=exc)
            body = Markup(f"<p>this page failed ({e(type(exc).__name__)}); see the gateway log</p>")
            await self._page(send, 500, "Error", body)

    # -- routing -------------------------------------------------------------------------------

    async def _route(
        self, scope: Scope, receive: Receive, send: Send, path: str, method: str
    ) -> None:
        rest = path.removeprefix(PREFIX).strip("/")
        if rest.startswith("static/"):
            return await self._file(send, rest.removeprefix("static/"))
        if rest == "login":
            if method == "POST":
                return await self._login(scope, receive, send)
            return await self._login_form(send, 200, _query(scope).get("next", "/ui/"))
        if rest == "logout" and method == "POST":
            return await self._redirect(send, "/ui/login", session.clear_cookie())
        if method not in ("GET", "HEAD"):
            raise ApiError(405, f"{method} is not served here: the console is read-only")
        if path == PREFIX:
            return await self._redirect(send, "/ui/")
        if not self._allowed(scope):
            if rest.startswith("api/"):
                return await self._json(send, 401, {"error": "sign in at /ui/login"})
            target = path + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
            return await self._redirect(send, "/ui/login?next=" + _quoted(target))
        if rest == "":
            return await self._page(send, 200, "Overview", overview.render(), "/ui/")
        if rest == "api/overview":
            return await self._json(send, 200, await self._overview())
        if rest == "requests":
            return await self._requests(send, _query(scope))
        if rest.startswith("requests/"):
            return await self._trace(send, unquote(rest.removeprefix("requests/")))
        if rest == "deployments":
            gw = self.gw
            body = pages.deployments(deployments(gw), breaker_history(gw), instances(gw))
            return await self._page(send, 200, "Deployments", body, "/ui/deployments")
        if rest == "keys":
            return await self._keys_page(send, _query(scope))
        if rest == "intent":
            return await self._intent(send, _query(scope))
        if rest == "migrations":
            return await self._migrations(send)
        if rest.startswith("migrations/report/"):
            return await self._replay_report(send, rest.removeprefix("migrations/report/"))
        if rest == "fingerprints":
            return await self._fingerprints(send)
        if rest == "mcp":
            rows = await self._read(lambda r: r.page(RequestFilter(wire="mcp"), None, 500), [])
            pins = await asyncio.to_thread(mcp_lock.read)
            body = Markup(watch_pages.lock(pins) + watch_pages.mcp(rows))
            return await self._page(send, 200, "MCP guard", body, "/ui/mcp")
        raise ApiError(404, f"no console page {path[:80]}")

    # -- who may look --------------------------------------------------------------------------

    def _admin_key(self) -> str:
        return os.environ.get(self.gw.config.auth.admin_key_env, "")

    def _allowed(self, scope: Scope) -> bool:
        """Anyone with keys off (a loopback bind); with keys on, the admin key or its session."""
        if not self.gw.guard.enabled:
            return True
        key = self._admin_key()
        if not key:
            return False
        headers = header_map(scope)
        token = session.cookie_token(headers)
        if token is not None and session.valid(key, token):
            return True
        return admin_refusal(self.gw.config.auth, headers) is None

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            raw = await read_body(
                receive, _MAX_LOGIN_BODY, self.gw.config.server.body_read_timeout_s
            )
        except TooLarge:
            raise ApiError(413, "the login form is larger than it can be") from None
        except TimeoutError:
            raise ApiError(408, "the login form was not received in time") from None
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        target = _local(form.get("next", "/ui/"))
        given = form.get("key", "")
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self._throttle.wait_s(client)
        if wait > 0:
            seconds = math.ceil(wait)
            problem = f"too many wrong keys from this address: try again in {seconds} s"
            return await self._login_form(
                send, 429, target, problem, [(b"retry-after", str(seconds).encode())]
            )
        refusal = admin_refusal(self.gw.config.auth, {"authorization": f"Bearer {given}"})
        if refusal is not None:
            if refusal.status == 401:  # a wrong key (not a gateway without one)
                self._throttle.failed(client)
            return await self._login_form(send, refusal.status, target, refusal.message)
        self._throttle.succeeded(client)
        secure = scope.get("scheme") == "https"
        cookie = session.set_cookie(session.mint(self._admin_key()), secure)
        await self._redirect(send, target, cookie)

    async def _login_form(
        self,
        send: Send,
        status: int,
        target: str,
        problem: str = "",
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        note = f'<p class="problem">{e(problem)}</p>' if problem else ""
        if not self.gw.guard.enabled:
            note += "<p class=muted>Keys are off (auth.mode: none): no sign-in is needed.</p>"
        body = Markup(
            f'{note}<form method="post" action="/ui/login" class="login">'
            f'<input type="hidden" name="next" value="{e(_local(target))}">'
            '<label>admin key <input type="password" name="key" autocomplete="off" '
            'autofocus required></label> <button type="submit">Sign in</button></form>'
            "<p class=muted>The key is checked once; the browser keeps a session token "
            "derived from it (12 hours), never the key.</p>"
        )
        await self._page(send, status, "Sign in", body, extra=extra)

    # -- pages that read the record ------------------------------------------------------------

    async def _read(self, work: Callable[[RecordReader], T], empty: T) -> T:
        def run() -> T:
            try:
                reader = open_reader(self.gw.config.store.url)
            except NoRecordStore:
                return empty
            with reader:
                return work(reader)

        return await asyncio.to_thread(run)

    async def _overview(self) -> dict[str, Any]:
        at, cached = self._summary
        if time.monotonic() - at < overview.FRESH_S:
            return cached
        rows = await self._read(lambda r: r.requests(limit=overview.SAMPLE), [])
        summary = overview.summarize(rows)
        summary["alarms"] = alarms(self.gw) + await asyncio.to_thread(self._record_alarms)
        self._summary = (time.monotonic(), summary)
        return summary

    async def _requests(self, send: Send, params: dict[str, str]) -> None:
        browse = requests_page.parse(params)
        rows = await self._read(
            lambda r: r.page(browse.where, browse.before, requests_page.PAGE_SIZE + 1), []
        )
        cfg = self.gw.config
        body = await asyncio.to_thread(
            requests_page.render, browse, rows, list(cfg.models), list(cfg.deployments)
        )
        await self._page(send, 200, "Requests", body, "/ui/requests")

    async def _trace(self, send: Send, request_id: str) -> None:
        if not request_id or len(request_id) > 200:
            raise ApiError(400, "a request id is 1 to 200 characters")

        def one(reader: RecordReader) -> dict[str, Any] | None:
            try:
                return reader.request(request_id)
            except RecordNotFound:
                return None

        rec = await self._read(one, None)
        if rec is None:
            return await self._page(send, 404, "Request", trace_page.not_found(request_id))
        # Off the event loop too: a body of megabytes takes a while to lay out.
        body = await asyncio.to_thread(trace_page.render, rec, self.gw.config.store.record_bodies)
        await self._page(send, 200, f"Request {rec['id']}", body, "/ui/requests")

    async def _keys_page(self, send: Send, params: dict[str, str]) -> None:
        over = params.get("over") or "7d"
        if over not in spend.WINDOWS:
            raise ApiError(400, f"over is one of {', '.join(spend.WINDOWS)}")
        span, bucket = spend.WINDOWS[over]
        now = time.time()

        def read(reader: RecordReader) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            return reader.key_spend(now - span, bucket), reader.key_refusals(now - span)

        rows = await asyncio.to_thread(self._keys)
        used, refused = await self._read(read, ([], []))
        body = await asyncio.to_thread(
            pages.keys,
            rows,
            self.gw.guard.enabled,
            pages.Usage(over, now - span, now, bucket, spend.by_key(used), refused),
        )
        await self._page(send, 200, "Keys and spend", body, "/ui/keys")

    def _keys(self) -> list[dict[str, Any]]:
        store = self.gw.guard.store()
        now = time.time()
        out = []
        for key in store.all():
            spent = store.spend(key.id, period_start(now, key.budget_period_s))
            limits = ", ".join(
                f"{v} {n}" for n, v in (("rpm", key.rpm), ("tpm", key.tpm)) if v is not None
            )
            budget = "-" if key.budget_usd is None else f"${key.budget_usd:g}"
            if key.budget_usd is not None and key.budget_period_s:
                budget += f" per {key.budget_period_s / 86400:g} d"
            out.append(
                {
                    "id": key.id,
                    "name": key.name,
                    "tenant": key.tenant,
                    "status": key_status(key, now),
                    "models": list(key.models),
                    "limits": limits or "-",
                    "budget": budget,
                    "spent": spent.usd,
                    "budget_usd": key.budget_usd,
                    "budget_period_s": key.budget_period_s,
                    "requests": spent.requests,
                }
            )
        return out

    async def _intent(self, send: Send, params: dict[str, str]) -> None:
        by = params.get("by") or "model"
        since = params.get("since") or "24h"
        if by not in record_pages.INTENT_GROUPS or since not in record_pages.INTENT_WINDOWS:
            groups = ", ".join(record_pages.INTENT_GROUPS)
            windows = ", ".join(record_pages.INTENT_WINDOWS)
            raise ApiError(400, f"by is one of {groups}; since is one of {windows}")
        start = time.time() - record_pages.INTENT_WINDOWS[since]

        def report(reader: RecordReader) -> dict[str, Any]:
            rows = reader.conversations(since=start, bodies=True)
            return intent_report(rows, reader.feedback(since=start), by)

        empty = intent_report([], [], by)
        body = record_pages.intent(await self._read(report, empty), by, since)
        await self._page(send, 200, "Intent", body, "/ui/intent")

    def _fingerprint_tables(self) -> FingerprintTables | None:
        url = self.gw.config.store.url
        try:
            open_reader(url).close()  # the record exists: its tables may be added to it
        except NoRecordStore:
            return None
        return open_fingerprints(url)

    async def _fingerprints(self, send: Send) -> None:
        def read() -> tuple[list[dict[str, Any]], list[CheckRecord], list[AlarmRecord]]:
            tables = self._fingerprint_tables()
            if tables is None:
                return [], [], []
            try:
                return tables.baselines(), tables.checks(limit=1000), tables.alarms(limit=200)
            finally:
                tables.close()

        body = watch_pages.fingerprints(*await asyncio.to_thread(read))
        await self._page(send, 200, "Fingerprints", body, "/ui/fingerprints")

    def _record_alarms(self) -> list[dict[str, str]]:
        """At most one reading every ALARMS_EVERY_S, however many pages poll. A source that
        cannot be read is logged and left out; the others are still shown."""
        now = time.monotonic()
        if now - self._alarms_read_at >= ALARMS_EVERY_S:
            self._alarms_read_at = now
            found: list[dict[str, str]] = []
            for source in (self._fingerprint_alarms, self._budget_alarms, self._migration_alarms):
                try:
                    found += source()
                except NoRecordStore:
                    pass
                except Exception as exc:
                    log.warning("console: alarms not read (%s)", type(exc).__name__, exc_info=exc)
            self._alarms = found
        return self._alarms

    def _migration_alarms(self) -> list[dict[str, str]]:
        """Canaries rolled back; intent miss rates that rose within the last hour."""
        with open_reader(self.gw.config.store.url) as reader:
            found = record_alarms.canary(reader.migration_events(None, 10_000))
            since = time.time() - record_alarms.INTENT_WINDOW_S
            rows = reader.conversations(since=since, bodies=True)
            report = intent_report(rows, reader.feedback(since=since), "model")
        return found + record_alarms.intent(report["alarms"], since)

    def _fingerprint_alarms(self) -> list[dict[str, str]]:
        tables = self._fingerprint_tables()
        if tables is None:
            return []
        try:
            return watch_pages.raised(tables.alarms(limit=200))
        finally:
            tables.close()

    def _budget_alarms(self) -> list[dict[str, str]]:
        if not self.gw.guard.enabled:
            return []  # no keys checked, no budgets kept
        store = self.gw.guard.store()
        now = time.time()
        budgeted = [k for k in store.all() if k.budget_usd is not None and k.revoked is None]
        return record_alarms.budget(
            (k, store.events(k.id, period_start(now, k.budget_period_s))) for k in budgeted
        )

    async def _migrations(self, send: Send) -> None:
        def report() -> dict[str, Any]:
            try:
                return migration_status(self.gw.config.store.url)
            except NoRecordStore:
                return {}

        body = record_pages.migrations(
            await asyncio.to_thread(report), await self._read(_replay_reports, [])
        )
        await self._page(send, 200, "Migrations", body, "/ui/migrations")

    async def _replay_report(self, send: Send, at: str) -> None:
        """A report `turnout migrate replay --html` wrote, found by its event: only a path the
        record names is ever read."""
        try:
            stamp = float(at)
        except ValueError:
            raise ApiError(400, "a report is named by its time") from None
        found = [r for r in await self._read(_replay_reports, []) if r.at == stamp]
        if not found:
            raise ApiError(404, "no replay report recorded at that time")
        path = Path(found[0].detail.get("path", ""))

        def load() -> bytes | None:
            if path.suffix != ".html" or not path.is_file():
                return None
            return path.read_bytes()

        html = await asyncio.to_thread(load)
        if html is None:
            raise ApiError(404, f"the report is no longer at {path}")
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-security-policy", _REPORT_CSP),
            *_SECURITY[1:],
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": html})

    # -- responses -----------------------------------------------------------------------------

    async def _page(
        self,
        send: Send,
        status: int,
        title: str,
        body: Markup,
        active: str = "",
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        signed = self.gw.guard.enabled and active != ""
        html = page(title, active, body, signed_in=signed)
        headers = [(b"content-type", b"text/html; charset=utf-8"), *_SECURITY, *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": html})

    async def _json(self, send: Send, status: int, body: Any) -> None:
        headers = [(b"content-type", b"application/json"), *_SECURITY]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": orjson.dumps(body)})

    async def _file(self, send: Send, name: str) -> None:
        if name not in self._static:
            raise ApiError(404, "no such file")
        headers = [(b"content-type", _STATIC[name].encode()), (b"cache-control", b"no-cache")]
        headers.append((b"x-content-type-options", b"nosniff"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._static[name]})

    async def _redirect(self, send: Send, location: str, cookie: str | None = None) -> None:
        headers = [(b"location", location.encode()), *_SECURITY]
        if cookie is not None:
            headers.append((b"set-cookie", cookie.encode()))
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _replay_reports(reader: RecordReader) -> list[MigrationEvent]:
    events = reader.migration_events(None, 10_000)
    return [ev for ev in events if ev.mode == "replay" and ev.kind == "report"]


def _query(scope: Scope) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    if len(raw) > _MAX_QUERY:
        raise ApiError(414, f"the query string is longer than {_MAX_QUERY} bytes")
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _local(target: str) -> str:
    """Only a console page: a login must not send the browser anywhere else."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def _quoted(target: str) -> str:
    from urllib.parse import quote

    return quote(target, safe="")
