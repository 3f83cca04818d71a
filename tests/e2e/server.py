"""Start `mockserver serve` as a user would: a real process on a free loopback port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(*args: str, timeout: float = 20.0) -> Iterator[str]:
    """Yield the base URL of a fresh server; stop it (and fail loudly if it died) afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "mockserver", "serve", "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}: {process.stdout.read().decode()}")
            try:
                with urllib.request.urlopen(base + "/__admin/health", timeout=1) as response:
                    if json.load(response) == {"status": "ok"}:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server did not answer within {timeout} s")
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


REPO = Path(__file__).resolve().parents[2]
