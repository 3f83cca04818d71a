"""The snapshot writer: a forked child that writes the snapshot while the server goes on answering.

On Linux compaction forks (mockserver/state/persistence.py): copy-on-write
gives the child a still picture of the state at the instant of the fork, as
Redis's BGSAVE does, and the server never waits for the serialization. The
child writes the file and leaves without cleanup; the server waits for it (a
child stuck past SNAPSHOT_DEADLINE is killed) and logs why one failed.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
import warnings
from pathlib import Path
from typing import NoReturn

from mockserver.child_process import die_with_parent, exit_cause
from mockserver.state.model import State
from mockserver.state.snapshot_file import atomic_write, document

log = logging.getLogger("mockserver")
SNAPSHOT_DEADLINE = 600  # s: a snapshot writer still running after this is stuck, not slow (1M customers: seconds)


def fork(path: Path, state: State, generation: int) -> int | None:
    """The pid of a child writing the snapshot of `state` as it is now (in the store's lock) to `path`, naming
    log `generation` the first it does not contain; None if no child could be made (the caller serializes)."""
    parent = os.getpid()
    try:
        with warnings.catch_warnings():  # 3.12+ warns of fork in a threaded process: the child only writes
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError as exc:  # no memory for a child: serialize here instead
        log.warning("could not fork the snapshot writer (%s); writing the snapshot from the server itself", exc)
        return None
    if pid == 0:
        _write_in_child(path, state, generation, parent)
    return pid


def _write_in_child(path: Path, state: State, generation: int, parent: int) -> NoReturn:
    """The forked child: it sees the state frozen at the fork. It writes, and leaves without cleanup."""
    code = 1
    try:
        gc.disable()  # no finalizer of the server's objects (sockets, loops) may run here
        die_with_parent(parent)  # a snapshot writer must not outlive the server
        atomic_write(path, document(state, generation))
        code = 0
    except BaseException as exc:  # noqa: BLE001 - a child must never return into the server's code
        os.write(2, f"mockserver: could not save the state file {path}: {exc}\n".encode())
    finally:
        os._exit(code)


def child_succeeded(pid: int) -> bool:
    """Wait for the snapshot writer (at most SNAPSHOT_DEADLINE s, then it is killed); a failure is logged with
    its cause (an exit code, or the signal that killed it)."""
    deadline = time.monotonic() + SNAPSHOT_DEADLINE
    try:
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                log.error("the snapshot writer (process %d) took over %d s: killed", pid, SNAPSHOT_DEADLINE)
                done = os.waitpid(pid, 0)
                break
            time.sleep(0.01)
    except ChildProcessError:
        log.error("the snapshot writer (process %d) could not be waited for; the snapshot is not trusted", pid)
        return False
    code = os.waitstatus_to_exitcode(done[1])
    if code == 0:
        return True
    cause = exit_cause(code)
    hint = " (out of memory?)" if code == -signal.SIGKILL else ""
    log.error("the snapshot writer (process %d) %s%s: the state file was not updated; the command log keeps every change", pid, cause, hint)
    return False
