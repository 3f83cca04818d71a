"""What the server's child processes share: none outlives the server, and how one ended is said in words.

Two kinds of child: the state file's snapshot writer, forked from a threaded
server (mockserver/state/snapshot_writer.py), and the workers of `serve
--workers` (mockserver/http/workers.py). libc's prctl is looked up at import:
a forked child of a threaded process must not call dlopen.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Any


def die_with_parent(parent: int | None = None) -> None:
    """In a child: the kernel kills it when its parent dies (Linux's PR_SET_PDEATHSIG). `parent`, the pid it
    was forked from: if that parent died before the prctl took effect, the child leaves now."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)


def exit_cause(code: int) -> str:
    """How a child ended, from its exit code (negative: the signal that killed it)."""
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"


def _prctl() -> Any:
    """libc's prctl, looked up at import: a forked child of a threaded process must not call dlopen."""
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PR_SET_PDEATHSIG = 1
_PRCTL = _prctl()
