"""The command log: one file of JSON lines, appended to before a change is answered.

Redis's append-only file and SQLite's write-ahead log are the models. Each
line is one change (mockserver/state/changes.py), written with a single
`write` on an O_APPEND descriptor while the store's lock is held, so the
file's order is the order the changes were made, and the line is in the
operating system's hands before the answer leaves: a killed process loses
nothing it answered. What a machine crash can lose is `fsync`'s business
(mockserver/state/persistence.py).

A crash can cut the last line of a file short. Reading forgives exactly that:
a last line without its newline, or one that is not JSON, is dropped with a
warning. A bad line anywhere else means the file was damaged, and the start
stops with the file and line named.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mockserver.state import codec

log = logging.getLogger("mockserver")
MARKER = "mockserver_log"
VERSION = 1


class LogCorrupt(ValueError):
    """A command log that cannot be replayed; the message names the file and line."""


class CommandLog:
    """One log file open for appending; the caller serializes appends (the store's lock)."""

    def __init__(self, path: Path, generation: int):
        self.path = path
        self.generation = generation
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.changes = 0  # lines appended after the header by this process
        if self.size == 0:
            self.append({MARKER: VERSION, "generation": generation})
            self.changes = 0

    def append(self, entry: dict[str, Any]) -> None:
        data = codec.line(entry)
        view = memoryview(data)
        while view:  # one write for a line of a regular file; the loop only guards a short write
            written = os.write(self.fd, view)
            view = view[written:]
        self.size += len(data)
        self.changes += 1

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


def entries(path: Path) -> Iterator[Any]:
    """The changes of a log file, after its header; a torn last line is dropped with a warning."""
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    # A whole file ends with a newline, so the last piece is empty; anything else there is a torn line.
    complete, tail = lines[:-1], lines[-1]
    if tail:
        log.warning("%s: dropped a torn last line (%d bytes), cut short by a crash while it was written", path, len(tail))
    parsed = []
    for number, line in enumerate(complete, 1):
        try:
            parsed.append(codec.loads(line))
        except ValueError as exc:
            if number == len(complete) and not tail:
                log.warning("%s: dropped a torn last line (line %d: %s)", path, number, exc)
                break
            raise LogCorrupt(f"{path}: line {number} is not JSON ({exc}); the log is damaged, move it away to start without it") from exc
    if not parsed or not isinstance(parsed[0], dict) or parsed[0].get(MARKER) != VERSION:
        if not parsed and not complete:
            return  # created, then the crash came before its header was written: nothing in it
        raise LogCorrupt(f"{path}: not a mockserver command log (version {VERSION})")
    yield from parsed[1:]
