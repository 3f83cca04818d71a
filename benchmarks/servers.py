"""Starting the servers under test as subprocesses, timing their start, measuring their memory, stopping them.

Every server binds 127.0.0.1 on a free port and runs in its own session, so
stopping it signals exactly the process group this module started.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
THREADS = 8  # `mockserver serve --threads` default; the baselines get the same


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def mockserver_argv(server: str, port: int, fixtures: Path | None = None) -> list[str]:
    """Exactly what a user types: `mockserver serve --host 127.0.0.1 --port P --server S [--fixtures F]`."""
    argv = [sys.executable, "-m", "mockserver", "serve", "--host", HOST, "--port", str(port), "--server", server]
    if fixtures is not None:
        argv += ["--fixtures", str(fixtures)]
    return argv


def baseline_argv(server: str, port: int) -> list[str]:
    """The bare-Flask app on the same server, configured as `mockserver serve` configures it."""
    if server == "granian":
        # mockserver runs granian with 1 worker, THREADS blocking threads and logging off
        return [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", "1", "--blocking-threads", str(THREADS),
            "--no-log", "--host", HOST, "--port", str(port), "benchmarks.baseline_app:app",
        ]  # fmt: skip
    if server == "waitress":
        return [sys.executable, "-m", "waitress", f"--listen={HOST}:{port}", f"--threads={THREADS}", "benchmarks.baseline_app:app"]
    raise ValueError(server)


# ---------------------------------------------------------------- probes


def http_get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def mockserver_probe(port: int) -> bool:
    """A valid answer: retrieveCustomer of the demo customer is a 200 with that customer's record."""
    status, body = http_get(port, "/cdm/client/demo/customer/BAK-11984-007", {"xx-relay-api-key": "demo-key"})
    return status == 200 and json.loads(body).get("ccid") == "BAK-11984-007"


def baseline_probe(port: int) -> bool:
    status, body = http_get(port, "/cdm/client/demo/customer/BAK-11984-007")
    return status == 200 and "message" in json.loads(body)


# ---------------------------------------------------------------- processes


@dataclass
class Memory:
    rss_mb: float  # sum of VmRSS over the process tree (shared pages counted in each process)
    pss_mb: float  # sum of Pss (shared pages split between the processes sharing them)
    processes: int


class ServerProcess:
    def __init__(self, name: str, argv: list[str], logdir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.argv = argv
        self.env = env or {}  # added to this process's environment
        self.log_path = logdir / f"{name.replace(' ', '_').replace('/', '_')}.log"
        self.proc: subprocess.Popen | None = None
        self.spawned_at = 0.0
        self.stop_seconds = 0.0

    def start(self) -> None:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(self.log_path, "wb") as log:
            self.spawned_at = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def wait_ready(self, probe: Callable[[], bool], timeout: float, interval: float = 0.01) -> float:
        """Seconds from spawn to the first valid answer of `probe`; raises if the process dies or time runs out."""
        assert self.proc is not None
        deadline = self.spawned_at + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before answering:\n{self.log_tail()}")
            try:
                if probe():
                    return time.perf_counter() - self.spawned_at
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(interval)
        raise TimeoutError(f"{self.name} gave no valid answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def memory(self) -> Memory:
        assert self.proc is not None
        pids = process_tree(self.proc.pid)
        rss = pss = 0
        for pid in pids:
            rss += _status_kb(pid, "VmRSS")
            pss += _smaps_rollup_kb(pid, "Pss")
        return Memory(rss / 1024, pss / 1024, len(pids))

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the server process, as a service manager would, then SIGKILL to its whole session.

        Granian's master passes SIGTERM on to its worker; mockserver saves its state file (if any) on the way
        out. Not SIGINT: a shell starts background jobs with SIGINT ignored, and Python children inherit that.
        """
        if self.proc is None or self.proc.poll() is not None:
            return
        started = time.perf_counter()
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            print(f"[bench] {self.name} still running {timeout:.0f} s after SIGTERM; killing it", file=sys.stderr, flush=True)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the session this object started: nothing of it may outlive it
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.stop_seconds = time.perf_counter() - started

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of these processes (all their threads), in clock ticks."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def minor_faults(pids: list[int]) -> int:
    """Minor page faults of these processes so far (copy-on-write copies among them)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
                total += int(handle.read().rsplit(")", 1)[1].split()[7])
        except OSError:
            continue
    return total


def busy_ticks() -> int:
    """CPU ticks spent busy by the whole machine (all cores), from /proc/stat."""
    with open("/proc/stat", encoding="utf-8") as handle:
        values = [int(v) for v in handle.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return user + nice + system + irq + softirq + steal


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (read from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def _status_kb(pid: int, field: str) -> int:
    return _field_kb(f"/proc/{pid}/status", field)


def _smaps_rollup_kb(pid: int, field: str) -> int:
    return _field_kb(f"/proc/{pid}/smaps_rollup", field)


def _field_kb(path: str, field: str) -> int:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
