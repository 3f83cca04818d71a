"""Start `mockserver serve` as a user would: a real process on a free loopback port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerUrl(str):
    """The base URL of a running server (a plain `str`, as before) that also knows its process.

    `pid` is the process `mockserver serve` runs in; under granian the requests
    are served by a forked child of it (see `process_tree`).
    """

    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def running_server(*args: str, timeout: float = 20.0, log_to: Path | None = None, admin_token: str | None = None) -> Iterator[ServerUrl]:
    """Yield the base URL of a fresh server; stop it (and fail loudly if it died) afterwards.

    The server's output goes to `log_to` (a temporary file by default), never
    to a pipe nobody reads, which would block a chatty server.
    """
    port = free_port()
    command = [sys.executable, "-m", "mockserver", "serve", "--port", str(port), *args]
    if admin_token:
        command += ["--admin-token", admin_token]
    with tempfile.TemporaryDirectory() as scratch:
        log_path = log_to or Path(scratch) / "server.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        base = ServerUrl(f"http://127.0.0.1:{port}")
        base.process = process
        try:
            _wait_healthy(process, base, timeout, admin_token, log_path)
            yield base
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """End a server process: politely, then for sure."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_healthy(process: subprocess.Popen, base: str, timeout: float, admin_token: str | None, log_path: Path) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log_path.read_text()}")
        try:
            with urllib.request.urlopen(urllib.request.Request(base + "/__admin/health", headers=headers), timeout=1) as response:
                if json.load(response) == {"status": "ok"}:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"server did not answer within {timeout} s") from None
            time.sleep(0.05)


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (read from /proc, no external tool)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending.extend(int(child) for child in children.read_text().split())
            except OSError:  # the task ended meanwhile
                pass
    return found


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` and its descendants, in KiB (VmRSS summed over the tree)."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


REPO = Path(__file__).resolve().parents[2]
