"""A real Redis for the tests: Debian's `redis-server`, installed when missing (as root, with apt), on a free
loopback port, with no persistence, stopped after."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.e2e.server import free_port, stop

BINARY = "redis-server"


def ensure_installed() -> str:
    """The path of redis-server, installing Debian's package first if it is missing and we may."""
    found = shutil.which(BINARY)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True, timeout=600)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"]
        subprocess.run(install, env=env, check=True, capture_output=True, timeout=600)
        found = shutil.which(BINARY)
    if found is None:
        raise RuntimeError("redis-server is not installed, and cannot be installed here (needs root and apt-get)")
    return found


@contextmanager
def redis_server(port: int | None = None) -> Iterator[str]:
    """Yield the URL of a fresh redis-server (`redis://127.0.0.1:PORT/0`, a free port unless given); stopped on exit."""
    binary, port = ensure_installed(), port or free_port()
    with tempfile.TemporaryDirectory(prefix="mockserver-redis-") as folder:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(process, port)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(process)


def _wait_ready(process: subprocess.Popen, port: int, timeout: float = 10.0) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        try:
            if client.ping():
                return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server did not answer on port {port} within {timeout} s") from None
            time.sleep(0.05)
