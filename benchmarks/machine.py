"""A description of the machine and software a benchmark ran on, for RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata

from benchmarks.servers import REPO

PACKAGES = ("mockserver", "flask", "werkzeug", "granian", "waitress", "openapi-core", "openapi-schema-validator", "jsonschema", "pyyaml")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gb() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    return "unknown"


def _run(argv: list[str]) -> str:
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


def describe(load_generator: str) -> list[tuple[str, str]]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = _run(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = _run(["git", "status", "--porcelain", "--", "mockserver", "spec", "fixtures"])
    rows = [
        ("CPU", f"{_cpu_model()} ({usable} usable of {os.cpu_count()} cores, nproc)"),
        ("memory", _mem_total_gb()),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", f"{platform.python_implementation()} {sys.version.split()[0]}"),
        ("load generator", load_generator),
        ("mockserver commit", commit + (" + uncommitted changes in mockserver/spec/fixtures" if dirty else "")),
    ]
    rows += [(f"`{package}`", _version(package)) for package in PACKAGES]
    return rows


def load_average() -> tuple[float, float, float]:
    try:
        with open("/proc/loadavg", encoding="utf-8") as handle:
            one, five, fifteen = (float(x) for x in handle.read().split()[:3])
            return one, five, fifteen
    except (OSError, ValueError):
        return (0.0, 0.0, 0.0)


def busy_processes(limit: int = 3, exclude: int | None = None) -> list[str]:
    """The processes (not this one) using the most CPU over a short sample: who else is loading the machine."""

    def ticks() -> dict[int, tuple[int, str]]:
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in (os.getpid(), exclude):
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as handle:
                    stat = handle.read()
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    cmd = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            found[int(entry)] = (int(fields[11]) + int(fields[12]), cmd[:80])
        return found

    before = ticks()
    time.sleep(1.0)
    after = ticks()
    hz = os.sysconf("SC_CLK_TCK")
    usage = sorted(((after[p][0] - before[p][0]) / hz, after[p][1]) for p in after if p in before)
    return [f"{share * 100:.0f}% {cmd}" for share, cmd in reversed(usage[-limit:]) if share >= 0.05]


def wrk_version() -> str:
    text = _run(["wrk", "-v"])
    return text.splitlines()[0] if text else "wrk (version unknown)"
