"""Real servers on free loopback ports for the tool tests: WSGI apps in a thread, the proxy as a process."""

from __future__ import annotations

import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from werkzeug.serving import make_server

from mockserver.testing.process import ServerProcess, free_port, listening


@contextmanager
def thread_server(app) -> Iterator[str]:
    """Serve a WSGI app from a thread of this process; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def proxy_process(upstream: str, timeout: float = 20.0) -> Iterator[tuple[str, ServerProcess]]:
    """`mockserver proxy` as a user starts it; yield its base URL and the server (its output: `.output()`)."""
    port = free_port()
    command = [sys.executable, "-m", "mockserver", "proxy", "--upstream", upstream, "--port", str(port)]
    with tempfile.TemporaryDirectory(prefix="mockserver-proxy-") as scratch:
        with ServerProcess.spawn(command, port, Path(scratch) / "proxy.log", name="mockserver proxy") as proxy:
            proxy.wait_ready(partial(listening, port), timeout)
            yield proxy.url, proxy


def call(method: str, url: str, headers: dict | None = None, body: bytes | None = None, timeout: float = 10.0):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
