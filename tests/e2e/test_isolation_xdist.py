"""Parallel CI tests on one mock: a pytest-xdist run (4 workers) of a suite whose tests all move the same
customer at once, each in its own session, passes run after run (#9).

3 runs in the normal suite; MOCKSERVER_ISOLATION_RUNS=20 for the issue's 20 in a row.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mockserver.testing.harness import running_server
from tests.e2e import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
RUNS = int(os.environ.get("MOCKSERVER_ISOLATION_RUNS", "3"))
SUITE = Path(__file__).with_name("isolation") / "suite_same_customer.py"
# The suite needs xdist and nothing else: neither tests/conftest.py (--noconftest) nor the other plugins
# installed here (schemathesis, hypothesis, ...), whose import cost each of its five processes about
# 2.5 s of CPU, four fifths of a run.
ONLY_XDIST = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def test_a_parallel_suite_on_one_server_passes_every_time():
    with running_server("--max-sessions", "1000") as base:
        for run in range(1, RUNS + 1):
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "xdist", "--noconftest", "-n", "4", str(SUITE)],
                cwd=REPO,
                env={**os.environ, "MOCKSERVER_URL": base, **ONLY_XDIST},
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"run {run} of {RUNS}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
            assert "40 passed" in done.stdout, done.stdout[-500:]
