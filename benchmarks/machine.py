"""A description of the machine and software a benchmark ran on, for RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
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


def wrk_version() -> str:
    text = _run(["wrk", "-v"])
    return text.splitlines()[0] if text else "wrk (version unknown)"
