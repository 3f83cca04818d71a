"""`serve --workers N`: N server processes on one port, all on the shared store (`--store redis://`).

granian binds its listening socket with SO_REUSEPORT, so N processes each
binding the same port share it, and the kernel spreads the connections among
them. This process only supervises: it claims the port (a taken one is
refused, as for one process), starts the workers (`serve` again, with the
same options, told the port and that it is a worker), announces the port once
it answers, restarts a worker that dies (logged with its cause: every state,
rule and journal lives in Redis, so nothing is lost with it), and on SIGTERM
or Ctrl-C stops them all. A worker dies with this process (PR_SET_PDEATHSIG):
none outlives it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mockserver.child_process import die_with_parent, exit_cause
from mockserver.http.serving import claim_port
from mockserver.settings import Settings

log = logging.getLogger("mockserver")
WORKER_OF = "MOCKSERVER_WORKER_OF"  # set in a worker's environment: the supervisor's pid
READY_IN = "MOCKSERVER_WORKER_READY"  # and the folder where it says it listens (a file named by its pid)
RESTART_PAUSE_S = 0.5  # a worker that dies at once is not restarted in a tight loop


def supervise(settings: Settings, workers: int, argv: list[str], announce: Callable[[int], None]) -> int:
    """Run `workers` copies of `serve` (`argv`: its options, without --workers/--port/--port-file) until
    stopped; returns the exit code."""
    stopping: list[int] = []
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda signum, _: stopping.append(signum))
    with claim_port(settings.host, settings.port) as port, tempfile.TemporaryDirectory(prefix="mockserver-workers-") as ready:
        command = [sys.executable, "-m", "mockserver", "serve", *argv, "--port", str(port), "--workers", "1"]
        env = {**os.environ, WORKER_OF: str(os.getpid()), READY_IN: ready, "MOCKSERVER_WORKERS": "1"}
        env.pop("MOCKSERVER_PORT_FILE", None)
        running = [_start(command, env) for _ in range(workers)]
        # Announced only when every worker listens: a client's connections opened at once would otherwise all
        # go to the first (keep-alive keeps them there), and the others would serve nothing.
        if not _until_listening(Path(ready), running, stopping):
            _stop(running)
            return 1 if not stopping else 0
        announce(port)
        log.info("%d workers serve port %d: %s", workers, port, " ".join(str(p.pid) for p in running))
        while not stopping:
            time.sleep(0.2)
            for index, process in enumerate(running):
                code = process.poll()
                if code is not None and not stopping:
                    log.error("worker %d %s; starting another (the state is in the shared store)", process.pid, exit_cause(code))
                    time.sleep(RESTART_PAUSE_S)
                    running[index] = _start(command, env)
        _stop(running)
    log.info("mockserver stopped")
    return 0


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    # In the worker, before exec: the kernel kills it when the supervisor dies (Linux).
    return subprocess.Popen(command, env=env, preexec_fn=die_with_parent)  # noqa: PLW1509 - the supervisor runs no threads


def _until_listening(ready: Path, running: list[subprocess.Popen], stopping: list[int], timeout: float = 120.0) -> bool:
    """Whether every worker says it listens before any exits, a stop is asked, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping:
        if len(list(ready.iterdir())) >= len(running):
            return True  # a worker that dies from now on is started again by the supervision loop
        ended = [process.returncode for process in running if process.poll() is not None]
        if ended:
            log.error("a worker exited during start (%s); stopping", exit_cause(ended[0]))
            return False
        time.sleep(0.05)
    return False


def say_listening(port: int) -> None:
    """In a worker, once it listens: tell the supervisor (and the log)."""
    log.info("worker %d serving port %d", os.getpid(), port)
    (Path(os.environ[READY_IN]) / str(os.getpid())).touch()


def _stop(running: list[subprocess.Popen]) -> None:
    for process in running:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
