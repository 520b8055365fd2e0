"""The runs dashboard over stdlib http.server: loopback by default, read-only, no framework.

It serves its own pages and stored reports only. A URL never names a file: run ids are checked
against a strict pattern and looked up in the store, a run's report.html is served only from inside
its recorded output directory (symlinks resolved), and every other path is a 404. The `Host` header
must name the bound address (loopback names by default: no DNS rebinding), and a server bound beyond
loopback needs a token (header, cookie, or `?token=` once, which sets the cookie).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import socket
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from edgeq.dashboard.page import TABLE_SCRIPT, render_dashboard, report_href
from edgeq.errors import InputError
from edgeq.report.html import render_html
from edgeq.store.runs import RUN_ID_PATTERN, RunStore, RunSummary

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
TOKEN_COOKIE = "edgeq_token"
MAX_REPORT_BYTES = 64 << 20  # a report page larger than this is not one edgeq wrote
_REPORT_PATH = re.compile(f"/runs/(?P<run_id>{RUN_ID_PATTERN.pattern})/report\\.html")
_FILTERS = ("model", "target", "recipe")
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(TABLE_SCRIPT.encode()).digest()).decode()
_REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_DASHBOARD_POLICY = f"{_REPORT_POLICY}; script-src 'sha256-{_SCRIPT_HASH}'"

logger = logging.getLogger(__name__)


class DashboardServer(ThreadingHTTPServer):
    """A threading HTTP server that knows the runs store it shows, its token and the Host names it answers."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: RunStore, token: str | None = None) -> None:
        self.store = store
        self.token = token
        super().__init__(address, _DashboardHandler)

    def host_allowed(self, header: str | None) -> bool:
        """The request's `Host` names this server: a loopback name, the bound address, or (bound to
        every interface) an IP literal or this machine's name; never a domain an attacker controls."""
        name = _host_name(header or "")
        bound = self.server_address[0]
        if name in LOOPBACK_NAMES or name == bound.lower():
            return True
        if bound in ("0.0.0.0", "::"):
            return _is_ip(name) or name in {socket.gethostname().lower(), socket.getfqdn().lower()}
        return False


def create_server(
    store: RunStore, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None
) -> DashboardServer:
    """Bind (port 0 picks a free one) without serving yet; call `serve_forever()` on the result.

    A non-loopback `host` needs a `token`: anyone who can reach the port would otherwise read the runs."""
    if token is None and not is_loopback(host):
        raise InputError(f"listening on {host} (beyond this machine) needs a token")
    return DashboardServer((host, port), store, token)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _host_name(header: str) -> str:
    """`example.com:8765` → `example.com`, `[::1]:8765` → `::1`, lower-cased."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class _DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "edgeq-dashboard"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        given = parse_qs(url.query)
        if not self.server.host_allowed(self.headers.get("Host")):
            self._send(HTTPStatus.FORBIDDEN, b"unknown Host header\n", "text/plain; charset=utf-8")
            return
        if self.server.token is not None and not self._authorized(given):
            return
        query = {key: values[0] for key, values in given.items() if key in _FILTERS}
        match = _match_report(url.path)
        if url.path in ("/", "/index.html"):
            page = render_dashboard(self.server.store, **query)
            self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", _DASHBOARD_POLICY)
        elif url.path == "/api/runs":
            runs = [api_run(run) for run in self.server.store.list_runs(**query)]
            self._send(HTTPStatus.OK, json.dumps(runs).encode(), "application/json")
        elif match and (page := _stored_report(self.server.store, match)) is not None:
            status = HTTPStatus.OK if page.startswith(b"<!DOCTYPE") else HTTPStatus.UNPROCESSABLE_ENTITY
            self._send(status, page, "text/html; charset=utf-8", _REPORT_POLICY)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _authorized(self, query: dict[str, list[str]]) -> bool:
        """The token as `Authorization: Bearer`, `X-Edgeq-Token` or the cookie; `?token=` sets the
        cookie and redirects to the same page without it. Anything else is answered 401 here."""
        expected = self.server.token or ""
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        offered = [bearer, self.headers.get("X-Edgeq-Token", ""), _cookie(self.headers.get("Cookie"))]
        if any(value and hmac.compare_digest(value, expected) for value in offered):
            return True
        in_url = query.get("token", [""])[0]
        if in_url and hmac.compare_digest(in_url, expected):
            rest = urlencode([(k, v) for k, values in query.items() if k != "token" for v in values])
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Location", urlsplit(self.path).path + (f"?{rest}" if rest else ""))
            self.send_header("Set-Cookie", f"{TOKEN_COOKIE}={expected}; HttpOnly; SameSite=Strict; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        self._send(
            HTTPStatus.UNAUTHORIZED, b"token required (see the edgeq dashboard output)\n", "text/plain"
        )
        return False

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, policy: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        if policy:
            self.send_header("Content-Security-Policy", policy)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        logger.info("%s %s", self.address_string(), format % args)


def _match_report(path: str) -> str | None:
    """The run id in `/runs/<id>/report.html`, matched on the raw, undecoded path."""
    match = _REPORT_PATH.fullmatch(path)
    return match["run_id"] if match else None


def _cookie(header: str | None) -> str:
    try:
        morsel = SimpleCookie(header or "").get(TOKEN_COOKIE)
    except CookieError:
        return ""
    return morsel.value if morsel else ""


def api_run(run: RunSummary) -> dict:
    """A run as `/api/runs` shows it: its report's URL on this server, no filesystem paths."""
    shown = {k: v for k, v in run.to_dict().items() if k not in ("html_path", "report_path")}
    return shown | {"report_url": report_href(run.run_id)}


def report_file(html_path: str | None) -> Path | None:
    """The recorded report.html if it is a regular file inside its run's output directory once every
    symlink is resolved (a link to /etc/passwd is not), else None."""
    if not html_path:
        return None
    recorded = Path(html_path)
    real, folder = recorded.resolve(), recorded.parent.resolve()
    inside = real.parent == folder and real.name == recorded.name == "report.html"
    if inside and real.is_file() and real.stat().st_size <= MAX_REPORT_BYTES:
        return real
    return None


def _stored_report(store: RunStore, run_id: str) -> bytes | None:
    """The run's report.html as written by the compile, or rendered again from the stored report
    (a stored report that no longer reads as one: the reason, as text)."""
    summary = store.summary(run_id)
    if summary is None:
        return None
    if (page := report_file(summary.html_path)) is not None:
        return page.read_bytes()
    try:
        return render_html(store.get(run_id)).encode()
    except InputError as error:
        return f"stored report of run {run_id} cannot be read: {error}\n".encode()
