"""Talking to a real server at the byte level: whole requests, raw bytes, slow senders.

`http.client` and `urllib` refuse to send much of what the hostile-input
tests need (CR/LF in a header, a raw non-UTF-8 request line, a body one byte
a second), so these helpers write bytes to a socket and read the answer back
with `http.client.HTTPResponse`. A connection the server closes or resets
without an answer is reported as `closed`, never raised.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

RELAY_KEY = {"xx-relay-api-key": "demo-key"}
OTHER_KEY = {"xx-relay-api-key": "other-key"}
USER = {"Authorization": "Bearer demo-user-token"}
APP = {"Authorization": "Bearer demo-app-token"}
READONLY = {"Authorization": "Bearer demo-readonly-token"}
EGAIN = "/core/customermgr/v3/customer"
SEED_MERGE = {
    "sourceCustomer": {"id": "1002"},
    "targetCustomer": {"id": "1005", "lastModified": "2021-10-25T11:29:58.000Z", "contacts": {"contact": [{"firstName": "John"}]}},
}


@dataclass
class Answer:
    """What the server said: a status, headers and body, or `status is None` for a closed connection."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    seconds: float = 0.0
    error: str = ""  # why the connection counts as closed

    @property
    def closed(self) -> bool:
        return self.status is None

    def json(self) -> Any:
        return json.loads(self.body)

    def describe(self, width: int = 90) -> str:
        """`400 {"code": ...}` (the body's head) or `closed (reason)`, on one line."""
        if self.closed:
            return f"closed ({self.error})" if self.error else "closed"
        text = self.body.decode("utf-8", "replace").replace("\r", "\\r").replace("\n", "\\n")
        if len(text) > width:
            text = text[: width - 1] + "…"
        return f"{self.status} {text}".rstrip()


def eventually(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Whether `check()` comes true within `seconds` (asked every 0.05 s): for what a server does a moment later."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    return parts.hostname or "127.0.0.1", parts.port or 80


def call(base: str, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None, timeout: float = 10.0) -> Answer:
    """One request on a fresh connection; a dict or list body is sent as JSON."""
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    host, port = address(base)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data, time.monotonic() - started)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, seconds=time.monotonic() - started, error=type(exc).__name__)
    finally:
        connection.close()


def request_bytes(method: str, target: bytes | str, headers: Iterable[bytes | str] = (), body: bytes = b"", close: bool = True) -> bytes:
    """A raw HTTP/1.1 request; header lines are sent exactly as given (CR/LF included)."""
    target = target.encode() if isinstance(target, str) else target
    lines = [f"{method} ".encode() + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [h.encode() if isinstance(h, str) else h for h in headers]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def exchange(base: str, data: bytes | Iterable[bytes], timeout: float = 10.0, pause: float = 0.0) -> Answer:
    """Send `data` on a new connection and read one answer.

    `data` is bytes, or pieces sent `pause` seconds apart (a slow client). The
    sending runs in its own thread so that a server answering early (e.g. a
    body refused unread) is read while the client is still sending.
    """
    pieces = [data] if isinstance(data, bytes) else list(data)
    started = time.monotonic()
    try:
        sock = socket.create_connection(address(base), timeout=timeout)
    except OSError as exc:
        return Answer(None, error=type(exc).__name__)

    def send() -> None:
        try:
            for i, piece in enumerate(pieces):
                if i and pause:
                    time.sleep(pause)
                sock.sendall(piece)
        except OSError:
            pass  # the server stopped reading: its answer (if any) is read below

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock, method=_method_of(pieces[0]))
        response.begin()
        body = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body, time.monotonic() - started)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, seconds=time.monotonic() - started, error=type(exc).__name__)
    finally:
        sock.close()
        sender.join(timeout=timeout)


def _method_of(data: bytes) -> str:
    head = data.split(b" ", 1)[0]
    return head.decode("ascii", "replace") if head.isalpha() else "GET"


class KeepAlive:
    """One persistent connection (per thread), reopened after the server closes it."""

    def __init__(self, base: str, timeout: float = 10.0):
        self.host, self.port = address(base)
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None) -> tuple[int, bytes]:
        """(status, body); raises OSError/HTTPException when the exchange itself fails."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, data

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
