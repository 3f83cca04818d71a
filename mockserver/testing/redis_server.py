"""A real Redis for the tests and the benchmarks: Debian's `redis-server`, installed when missing (as root, with apt), on a free
loopback port, with no persistence, stopped after."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from mockserver.testing.process import HOST, ServerProcess, free_port

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
        command = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", folder]
        with ServerProcess.spawn(command, port, Path(folder) / "redis.log", name="redis-server") as server:
            server.wait_ready(partial(_answers, port), timeout=10)
            yield f"redis://{HOST}:{port}/0"


def _answers(port: int) -> bool:
    import redis

    try:
        with redis.Redis(host=HOST, port=port, socket_connect_timeout=0.5) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False
