"""Breaking a connection behind the HTTP server's back, for the `connection_reset` and `empty_response` faults.

Neither granian nor waitress lets an app abort a connection (an exception
becomes a 500), so the socket itself is acted on, without closing its
descriptor, which the server still owns:
- reset: connect(fd, AF_UNSPEC) makes Linux disconnect the socket and send an RST now;
- empty: shutdown(SHUT_RDWR) on a duplicate sends a FIN with no bytes before it.
The server notices the dead socket on its next read or write. Linux only:
elsewhere these two kinds are refused when a rule asks for them.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys

SUPPORTED = ("connection_reset", "empty_response", "malformed_body") if sys.platform == "linux" else ("malformed_body",)


def break_connection(fd: int, kind: str) -> None:
    if kind == "connection_reset":
        _disconnect(fd)
    else:
        duplicate = socket.socket(fileno=os.dup(fd))
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        finally:
            duplicate.close()  # the duplicate only


def _disconnect(fd: int) -> None:
    unspecified = ctypes.create_string_buffer(16)  # a struct sockaddr whose family is AF_UNSPEC (0)
    if ctypes.CDLL(None, use_errno=True).connect(fd, unspecified, 16) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def find_socket(local: tuple[str, int], peer: tuple[str, int]) -> int | None:
    """The descriptor of this process's TCP socket between `local` and `peer` (granian keeps it in Rust)."""
    wanted = ((local[0], int(local[1])), (peer[0], int(peer[1])))
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            probe = socket.socket(fileno=os.dup(int(name)))
        except OSError:  # closed meanwhile
            continue
        try:
            if probe.type == socket.SOCK_STREAM and _ends(probe) == wanted:
                return int(name)
        finally:
            probe.close()
    return None


def _ends(probe: socket.socket) -> tuple | None:
    """(local, peer) addresses of a connected socket; None for a listening or closing one, which has no peer."""
    try:
        return probe.getsockname()[:2], probe.getpeername()[:2]
    except OSError:
        return None
