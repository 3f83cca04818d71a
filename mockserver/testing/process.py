"""A real server in a process of its own, as the tests and the benchmarks start one: its output in a file, ready when a
probe says so, stopped for sure.

`MockServer` (harness.py) is this for `mockserver serve`; the proxy tests, Redis
and the benchmarks' bare baseline app use it as it is. Standard library only, as
the rest of mockserver.testing; Linux's /proc for the process tree and memory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A server process ended, or did not get ready in time; the message says how (with its output)."""


def free_port() -> int:
    """A port free right now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    """True once something accepts connections on the port (a probe for servers with no health check)."""
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


class ServerProcess:
    """One server process on a loopback port, its output appended to `log_path` from `read_from` on."""

    def __init__(self, process: subprocess.Popen, port: int, log_path: Path, read_from: int = 0, name: str = "the server"):
        self.process = process
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log_path = log_path
        self.name = name
        self._read_up_to = read_from
        self.spawned_at = time.perf_counter()
        self.ready_after: float | None = None  # seconds from the spawn to the first ready answer, once waited for

    @classmethod
    def spawn(
        cls, command: Sequence[str], port: int, log_path: Path, cwd: Path | None = None, env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Self:
        """Start `command` in `cwd`; its output goes to a file, never a pipe nobody reads (a chatty server would block),
        appended, so a line added by anyone else is never overwritten."""
        with open(log_path, "ab") as log:
            start = log.tell()
            environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=environment)
        return cls(process, port, log_path, read_from=start, **kwargs)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """What the server wrote since it was spawned."""
        with open(self.log_path, "rb") as log:
            log.seek(self._read_up_to)
            return log.read().decode("utf-8", "replace")

    def wait_ready(self, ready: Callable[[], bool], timeout: float, poll: float = 0.05) -> float:
        """Poll `ready()` (an OSError counts as not yet) until it says so; the seconds since the spawn.

        Raises ServerError, with the server's output, if the process ends or `timeout` runs out first.
        """
        deadline = self.spawned_at + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.process.returncode}:\n{self.output().strip()}")
            try:
                if ready():
                    self.ready_after = time.perf_counter() - self.spawned_at
                    return self.ready_after
            except OSError:
                pass
            if time.perf_counter() > deadline:
                raise ServerError(f"{self.name} did not answer on {self.url} within {timeout:g} s; its output: {self.log_path}")
            time.sleep(poll)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown, like Ctrl-C), then SIGKILL if it does not end within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


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
    """Resident memory of `pid` and its descendants, in KiB (VmRSS summed: shared pages count in each process)."""
    return _summed(pid, "status", "VmRSS")


def pss_kib(pid: int) -> int:
    """Proportional memory of `pid` and its descendants, in KiB (Pss: shared pages split among their sharers)."""
    return _summed(pid, "smaps_rollup", "Pss")


def _summed(pid: int, name: str, field: str) -> int:
    total = 0
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/{name}").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith(field + ":"))
    return total
