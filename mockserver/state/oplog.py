"""The command log: one file of JSON lines, appended to before a change is answered.

Redis's append-only file and SQLite's write-ahead log are the models. Each
line is one change (mockserver/state/changes.py), written with a single
`write` on an O_APPEND descriptor while the store's lock is held, so the
file's order is the order the changes were made, and the line is in the
operating system's hands before the answer leaves: a killed process loses
nothing it answered. What a machine crash can lose is `fsync`'s business
(mockserver/state/persistence.py).

A crash can cut the last line of a file short. Reading forgives exactly that:
a last line without its newline is dropped with a warning. A whole line that
is not JSON means the file was damaged, and the start stops with the file and
line named. A failed write is cut back off the file, so it cannot leave a
fragment for the next line to be glued to.
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
VERSION = 2  # 2: a change names each record by family, collection and id (mockserver/state/section.py)


class LogCorrupt(ValueError):
    """A command log that cannot be replayed; the message names the file and line."""


class CommandLog:
    """One log file open for appending; the caller serializes appends (the store's lock)."""

    def __init__(self, path: Path, generation: int):
        self.path = path
        self.generation = generation
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        self.fd = os.open(path, flags, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.changes = 0  # lines appended after the header by this process
        if self.size == 0:
            try:
                self.append({MARKER: VERSION, "generation": generation})
            except OSError:
                os.close(self.fd)
                raise
            self.changes = 0

    def append(self, entry: dict[str, Any]) -> None:
        """Write one whole line, or nothing: a failed write (a full disk) is cut back off the file, so the next
        line never lands glued to a fragment. Raises OSError if the line is not in the file."""
        data = codec.line(entry)
        view = memoryview(data)
        try:
            while view:  # one write for a line of a regular file; the loop only guards a short write
                view = view[os.write(self.fd, view) :]
        except OSError:
            os.ftruncate(self.fd, self.size)  # if this fails too, the caller stops taking changes
            raise
        self.size += len(data)
        self.changes += 1

    def sync(self) -> None:
        """fsync; an unlinked file (its folder or the file removed under the server) is an error: it is
        durable nowhere anyone will look."""
        os.fsync(self.fd)
        self.check_linked()

    def check_linked(self) -> None:
        if os.fstat(self.fd).st_nlink == 0:
            raise FileNotFoundError(f"{self.path} was removed while the server was writing to it")

    def close(self) -> None:
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)


def entries(path: Path, generation: int) -> Iterator[Any]:
    """The changes of log file `path`, after its header (which must name `generation`).

    Streamed line by line. A last line without its newline was cut short by a crash: it is dropped with a
    warning. Any whole line that is not JSON means damage, and stops the start.
    """
    with open(path, "rb") as handle:
        header = True
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                log.warning("%s: dropped a torn last line (%d bytes), cut short by a crash while it was written", path, len(line))
                return
            try:
                entry = codec.loads(line)
            except ValueError as exc:
                message = f"{path}: line {number} is not JSON ({exc}); the log is damaged, move it away to start without it"
                raise LogCorrupt(message) from exc
            if header:
                if not isinstance(entry, dict) or entry.get(MARKER) != VERSION or entry.get("generation") != generation:
                    raise LogCorrupt(f"{path}: not the mockserver command log number {generation} (version {VERSION})")
                header = False
                continue
            yield entry
