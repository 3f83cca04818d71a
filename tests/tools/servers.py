"""Real servers on free loopback ports for the tool tests: WSGI apps in a thread, the proxy as a process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server

from tests.e2e.server import free_port, stop


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
def proxy_process(upstream: str, timeout: float = 20.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """`mockserver proxy` as a user starts it; yield its base URL and the process (stdout+stderr piped)."""
    port = free_port()
    command = [sys.executable, "-m", "mockserver", "proxy", "--upstream", upstream, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"proxy exited with {process.returncode}: {process.stdout.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"proxy did not listen within {timeout} s") from None
                time.sleep(0.05)
        yield base, process
    finally:
        stop(process)


def call(method: str, url: str, headers: dict | None = None, body: bytes | None = None, timeout: float = 10.0):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
