"""Held load: slow and idle clients held against a server while a normal client is measured.

A server whose request threads can be pinned by clients that are slow (a body
trickling in) or waiting (a delayed answer, a long poll) freezes for everybody
else. `hold()` opens such connections from a background thread with its own
event loop and keeps them while the caller measures a normal client
(`probe_moves` in the tests, wrk in the benchmark runner); its report says
what was held and what the server did to it. Stdlib only (raw sockets through
asyncio), and every wait is bounded, so a frozen server fails a measurement
instead of hanging it.
"""

from __future__ import annotations

import contextlib
import resource
import threading
from collections.abc import Iterator

from mockserver.testing.held_load.connections import STOP_SLACK, Holder
from mockserver.testing.held_load.shape import HeldLoad, HeldReport, KindReport, describe, long_poll_request, raw_request, repeat

READY_SLACK = 10.0  # beyond open_timeout: the thread starting and resolving the host
FD_MARGIN = 256  # descriptors beyond the held connections: the probe, wrk's pipes, logs

__all__ = ["HeldLoad", "HeldReport", "KindReport", "describe", "hold", "long_poll_request", "raise_fd_limit", "raw_request", "repeat"]


@contextlib.contextmanager
def hold(base_url: str, shape: HeldLoad) -> Iterator[HeldReport]:
    """Hold `shape` against the server at `base_url` (http only) for the duration of the with-block.

    Opens idle connections first, then trickling bodies, then the waiting
    requests' connections (so a server frozen by the trickles still gets its
    idle connections), sends every waiting request at once, lets the server
    take it all up for `settle_seconds` and yields the report (check
    `report.all_established`). The load is released when the block ends or
    `hold_seconds` after the yield, whichever comes first; on exit unanswered
    waiting requests get `answer_grace` seconds, then every connection is
    closed and the thread is joined. A server that refuses or freezes shows
    in the report, never as a hang.
    """
    report = HeldReport.of(shape)
    raise_fd_limit(shape.connections + FD_MARGIN)
    holder = Holder(base_url, shape, report)
    thread = threading.Thread(target=holder.run, name="held-load", daemon=True)
    thread.start()
    try:
        if not holder.ready.wait(shape.open_timeout + READY_SLACK):
            report.errors["not open in time"] += 1
        if holder.failure is not None:
            raise holder.failure
        yield report
    finally:
        holder.stop()
        thread.join(shape.answer_grace + STOP_SLACK)
        if thread.is_alive():
            raise RuntimeError("the held-load thread did not stop")  # a bug here: every wait in it is bounded
    if holder.failure is not None:
        raise holder.failure


def raise_fd_limit(needed: int) -> None:
    """Lift this process's soft descriptor limit to `needed` when the hard limit allows, or refuse early.

    Do it before starting the server from this process: a child inherits
    the limit in force when it starts.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ValueError(f"the held load needs {needed} file descriptors; the hard limit is {hard} (ulimit -n)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
