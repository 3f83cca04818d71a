"""`mockserver proxy`: forward real traffic to a server and check both directions against the spec.

Each request is forwarded unchanged (method, path and query as received,
headers except the hop-by-hop ones, body) to the upstream, and the upstream's
answer comes back unchanged (status, headers except the hop-by-hop ones,
body). On the way, openapi-core (`mockserver.contract.reference.Reference`,
JSON and XML) judges the request and the answer. What breaks the spec is
added to the answer in one header, `X-Mockserver-Contract-Violations` (absent
when all is well), and logged at WARNING with the full detail.

Findings are named like the schemathesis checks of `mockserver contract`
where one applies, so both tools speak of a drift the same way:

* status_code_conformance, content_type_conformance,
  response_schema_conformance, response_headers_conformance: the answer is
  not what the spec documents for the operation;
* ignored_auth: a 2xx answer to a request without the credentials the spec
  requires (openapi-core checks that they are present, not their value);
* negative_data_rejection: a 2xx answer to a request that breaks the spec;
* request_conformance: the request breaks the spec (the client's side);
* unknown_path, unknown_method: the spec has no such operation (forwarded
  anyway; the answer cannot be judged).
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import ssl
import sys
import urllib.parse
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mockserver.http.serving import is_loopback

log = logging.getLogger("mockserver.proxy")

HEADER = "X-Mockserver-Contract-Violations"
MAX_HEADER_CHARS = 1000
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding", "upgrade"}
)
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "expect"}  # Host and Content-Length are set for the upstream
NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True)
class Finding:
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


@dataclass(frozen=True)
class Upstream:
    scheme: str
    host: str
    port: int | None
    base_path: str  # prefix of every forwarded path, without the trailing slash

    @classmethod
    def parse(cls, url: str) -> Upstream:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the upstream must be an http(s) URL such as http://127.0.0.1:8080, not {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"the upstream URL takes no query or fragment: {url!r}")
        return cls(parts.scheme, parts.hostname, parts.port, parts.path.rstrip("/"))

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class ContractProxy:
    """The WSGI app of `mockserver proxy`."""

    def __init__(
        self,
        upstream: str,
        document: dict | None = None,
        timeout: float = 30.0,
        max_body_bytes: int = 16 << 20,
    ):
        from mockserver.contract.compiled import Contract
        from mockserver.contract.reference import Reference
        from mockserver.contract.spec import load_document

        document = document if document is not None else load_document()
        self.upstream = Upstream.parse(upstream)
        self.reference = Reference(document)
        self.contract = Contract(document)  # only to name the operation a request is for
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        from mockserver.http.wsgi import raw_request

        incoming = Request(environ)
        raw = raw_request(incoming, self.max_body_bytes)
        if raw.body_too_large:
            message = f"mockserver proxy: request bodies over {self.max_body_bytes} bytes are not forwarded."
            return _own_answer(start_response, "413 Content Too Large", message)
        target = self.upstream.base_path + _request_target(environ)
        try:
            status, reason, headers, body = self._forward(raw.method, target, incoming.headers.items(), raw.body)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            log.error("upstream %s://%s did not answer %s %s: %s", self.upstream.scheme, self.upstream.netloc, raw.method, target, exc)
            return _own_answer(start_response, "502 Bad Gateway", f"mockserver proxy: the upstream did not answer: {exc}")

        findings = self.judge(raw, status, headers, body)
        out = [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP]
        if not any(name.lower() == "content-length" for name, _ in out) and status not in NO_BODY_STATUSES and status >= 200:
            out.append(("Content-Length", str(len(body))))  # the upstream sent it chunked
        if findings:
            out.append((HEADER, header_value(findings)))
            detail = "\n".join(f"  - {finding}" for finding in findings)
            log.warning("contract violation(s) in %s %s -> %d:\n%s", raw.method, raw.path, status, detail)
        start_response(f"{status} {reason or http.client.responses.get(status, 'Unknown')}", out)
        return [body] if raw.method != "HEAD" else []

    def _forward(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = self.upstream.connect(self.timeout)
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", self.upstream.netloc)
            had_length = False
            for name, value in headers:
                lowered = name.lower()
                had_length = had_length or lowered == "content-length"
                if lowered not in NOT_FORWARDED:
                    connection.putheader(name, value)
            if body or had_length:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            answer = connection.getresponse()
            content = answer.read(self.max_body_bytes + 1)
            if len(content) > self.max_body_bytes:
                raise ValueError(f"the answer is over {self.max_body_bytes} bytes")
            return answer.status, answer.reason, answer.getheaders(), content
        finally:
            connection.close()

    def judge(self, raw: Any, status: int, headers: list[tuple[str, str]], body: bytes) -> list[Finding]:
        """What breaks the spec in this exchange (an empty list when nothing does)."""
        from mockserver.contract.errors import MethodNotAllowed, RequestInvalid, RouteNotFound

        try:
            operation, _ = self.contract.match(raw.method, raw.path)
        except RouteNotFound:
            return [Finding("unknown_path", f"{raw.method} {raw.path}: no path of the spec matches (answered {status})")]
        except MethodNotAllowed as exc:
            allowed = ", ".join(exc.allowed)
            return [Finding("unknown_method", f"{raw.method} {raw.path}: the spec documents only {allowed} here (answered {status})")]
        name = operation.operation_id
        findings: list[Finding] = []
        request_errors = [e for e in self.reference.request_errors(raw) if isinstance(e, RequestInvalid)]
        for error in request_errors:
            problem = "none of the credentials the spec requires is present" if error.kind == "security" else error.message
            findings.append(Finding("request_conformance", f"{name} request: {problem}"))
        if 200 <= status < 300 and request_errors:
            if any(error.kind == "security" for error in request_errors):
                findings.append(Finding("ignored_auth", f"{name} answered {status} to a request without the credentials the spec requires"))
            else:
                kinds = ", ".join(dict.fromkeys(error.kind for error in request_errors))
                findings.append(Finding("negative_data_rejection", f"{name} answered {status} to a request that breaks the spec ({kinds})"))
        findings.extend(self._response_findings(name, raw, status, headers, body))
        return findings

    def _response_findings(self, name: str, raw: Any, status: int, headers: list[tuple[str, str]], body: bytes) -> list[Finding]:
        try:
            body = _decoded(headers, body)
        except (OSError, ValueError, zlib.error) as exc:
            return [Finding("content_encoding", f"{name} {status}: the body cannot be decoded for checking ({exc})")]
        return [Finding(error.check, f"{name} {error}") for error in self.reference.response_errors(raw, status, headers, body)]


def header_value(findings: list[Finding]) -> str:
    """One short, single-line, printable-ASCII summary for the response header."""
    text = f"{len(findings)} violation(s): " + "; ".join(str(finding) for finding in findings)
    text = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_HEADER_CHARS else text[: MAX_HEADER_CHARS - 3] + "..."


def _decoded(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The body as the spec describes it: gzip and deflate content codings undone (for checking only)."""
    coding = next((value for key, value in headers if key.lower() == "content-encoding"), "identity").strip().lower()
    if coding in ("", "identity") or not body:
        return body
    if coding in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if coding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    raise ValueError(f"unsupported Content-Encoding {coding!r}")


def _request_target(environ: dict) -> str:
    """The path and query exactly as the client sent them."""
    uri = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if uri:
        if not uri.startswith("/"):  # absolute form: http://host/path?query
            parts = urllib.parse.urlsplit(uri)
            uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # Characters a URI cannot carry (raw non-ASCII bytes, spaces) are percent-encoded; the rest is kept as sent.
        return urllib.parse.quote(uri.encode("latin-1"), safe="!#$%&'()*+,/:;=?@[]~-._")
    path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8", "replace")
    query = environ.get("QUERY_STRING", "")
    return urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~%") + (f"?{query}" if query else "")


def _own_answer(start_response: Callable, status: str, message: str) -> list[bytes]:
    body = json.dumps({"message": message}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# ---------------------------------------------------------------- command line


@click.command("proxy")
@click.option("--upstream", required=True, help="The server to forward to, e.g. https://relay.example.com (a path prefix is kept).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; loopback unless you mean to share it.")
@click.option("--port", default=8081, show_default=True, type=click.IntRange(0, 65535))
@click.option("--spec", type=click.Path(dir_okay=False, path_type=Path), default=None, help="OpenAPI file (default: the bundled spec).")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(0.1, 600), help="Seconds to wait for the upstream.")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256), help="Request threads of the proxy.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]), show_default=True)
def proxy_command(upstream: str, host: str, port: int, spec: Path | None, timeout: float, threads: int, log_level: str) -> None:
    """Forward every request to UPSTREAM unchanged and report contract violations of both sides.

    Violations are added to the answer in the X-Mockserver-Contract-Violations header
    and logged at WARNING with the full detail.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from mockserver.contract.spec import load_document

    try:
        document = load_document(spec) if spec else None
        app = ContractProxy(upstream, document, timeout=timeout)
    except (OSError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if not is_loopback(host):
        click.echo(f"warning: binding to {host} exposes the proxy (and the upstream behind it) beyond this machine.", err=True)
    import waitress

    log.info("mockserver proxy listening on http://%s:%d, forwarding to %s", host, port, upstream)
    try:
        waitress.serve(app, host=host, port=port, threads=threads, ident="mockserver-proxy", _quiet=True)
    except OSError as exc:
        click.echo(f"error: cannot serve on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(2)
