"""The machine a run measures on: what it is, and how busy other processes keep it (a shared machine is noisy)."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TypeVar

from mockserver.testing.process import process_tree

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("mockserver", "flask", "granian", "uvloop", "waitress", "openapi-core", "jsonschema-rs", "redis", "pyyaml")
HZ = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def _first(path: str, prefix: str) -> str:
    try:
        return next((line.split(":", 1)[1].strip() for line in Path(path).read_text().splitlines() if line.startswith(prefix)), "?")
    except OSError:
        return "?"


def _run(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> list[tuple[str, str]]:
    dirty = _run("git", "status", "--porcelain", "--", "mockserver", "spec", "fixtures")
    memory_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    return [
        ("CPU", f"{_first('/proc/cpuinfo', 'model name')} ({len(os.sched_getaffinity(0))} usable of {os.cpu_count()} cores)"),
        ("memory", f"{int(memory_kb) / 1024 / 1024:.1f} GB" if memory_kb.isdigit() else "?"),
        ("OS, Python", f"{platform.system()} {platform.release()}, {platform.python_implementation()} {sys.version.split()[0]}"),
        ("load generator", (_run("wrk", "-v").splitlines() or ["wrk"])[0]),
        ("mockserver commit", (_run("git", "rev-parse", "--short", "HEAD") or "?") + (" + uncommitted changes" if dirty else "")),
        ("load average at start", " / ".join(f"{x:.2f}" for x in os.getloadavg())),
        *((f"`{package}`", _version(package)) for package in PACKAGES),
    ]


def busy_ticks() -> int:
    """CPU clock ticks the whole machine has spent busy (all cores), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in Path("/proc/stat").read_text().split()[1:9])
    return user + nice + system + irq + softirq + steal


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of these processes (all their threads)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def own_ticks() -> int:
    """This process's CPU and that of its finished children (wrk)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime) * HZ)


def others_during(run: Callable[[], T], server_pid: int | None = None) -> tuple[T, float]:
    """`run()`, and the cores other processes kept busy meanwhile: the machine's busy time less the server's and ours."""
    tree = process_tree(server_pid) if server_pid else []
    before, started = (busy_ticks(), cpu_ticks(tree), own_ticks()), time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    busy, server, own = busy_ticks() - before[0], cpu_ticks(tree) - before[1], own_ticks() - before[2]
    return result, max(0.0, (busy - server - own) / HZ / elapsed)


def wait_quiet(limit: float, below: float, tell: Callable[[str], None], server_pid: int | None = None) -> None:
    """Wait at most `limit` seconds for processes other than the server and ours to use under `below` cores
    (sampled over 0.5 s)."""
    deadline, told = time.perf_counter() + limit, False
    while time.perf_counter() < deadline:
        _, others = others_during(lambda: time.sleep(0.5), server_pid)
        if others < below:
            return
        if not told:
            tell(f"other processes keep {others:.2f} cores busy; waiting up to {limit:.0f} s for them")
            told = True
