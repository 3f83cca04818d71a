"""One attempt of a command on Redis: its own connection, what it watches, and its MULTI/EXEC.

A write's records are watched as they are read and its changes written in
one transaction, guarded by a fence key of its own, so that an EXEC whose
answer was lost can be told apart: committed or not (see
`RedisStore._committed` in mockserver/state/redis_store.py). The exceptions
here tell the store why an attempt cannot stand: run it again, on which
generation, or not at all (the session's life ended).
"""

from __future__ import annotations

import uuid
from typing import Any

import redis

FENCE_MS = 60_000  # how long a transaction's fence outlives it: far longer than any answer can be late


class Again(Exception):
    """This attempt cannot stand: run the command again."""


class Stale(Again):
    """The session was reset since the generation this attempt reads: run again on `generation`."""

    def __init__(self, generation: int):
        super().__init__(generation)
        self.generation = generation


class Ended(Exception):
    """The session's life this store belongs to is over (deleted, or idle past --session-idle)."""


class Unsure(Exception):
    """The EXEC was sent, and the connection broke before its answer came."""

    def __init__(self, fence: str, result: Any):
        super().__init__(fence)
        self.fence, self.result = fence, result


class Link:
    """One attempt's own connection. A record's WATCH and GET travel in one round trip (with the generation,
    watched and read with it), as do MULTI, MSET and EXEC: a move is two round trips.

    A write also watches a fence key of its own and sets it in its transaction, so that an EXEC whose answer
    was lost can be told apart: committed (the fence is set) or not, and then never later (see `_committed`).
    """

    def __init__(self, client: redis.Redis, prefix: str, watching: bool, life: bytes | None = None):
        """`life`: the session's life the attempt belongs to, read with the generation (None: the default session's)."""
        self._pool = client.connection_pool
        self._connection = self._pool.get_connection()
        self._generation_key = prefix + "gen"
        self._checked = (self._generation_key,) if life is None else (self._generation_key, prefix + "life")
        self._life = life
        self.fence = f"{prefix}tx:{uuid.uuid4().hex}" if watching else ""  # a read commits nothing: no fence
        self._watching = watching
        self._watched = False
        self._names: list[str] = []
        self._seen: list[bytes | None] = []
        self.generation: int | None = None  # as read by this attempt

    def read(self, name: str, expected_generation: int) -> bytes | None:
        """The value of `name` (watched for a write); raises Stale if the session's generation moved on, Ended
        if its life did (a life ends with its generation, so watching the generation watches both)."""
        watch = [("WATCH", self._generation_key, self.fence, name)] if self._watching else []
        generation, *life, value = self._send(*watch, ("MGET", *self._checked, name))[-1]
        self._watched |= self._watching
        if life and life[0] != self._life:
            raise Ended
        self.generation = int(generation or 0)
        if self.generation != expected_generation:
            raise Stale(self.generation)
        self._names.append(name)
        self._seen.append(value)
        return value

    def commit(self, writes: dict[str, bytes], result: Any, keys: str) -> None:
        """MULTI, the changes, their names added to the generation's `keys` (what a reset unlinks), the fence, EXEC;
        `result` is the command's, for the caller if the answer is lost."""
        if not self._watched:  # a write that read nothing: its fence must be watched before the EXEC can go
            self._send(("WATCH", self._generation_key, self.fence))
            self._watched = True
        changes = ("MSET", *[part for pair in writes.items() for part in pair])
        try:
            fence = ("SET", self.fence, b"done", "PX", FENCE_MS)
            *_, done = self._send(("MULTI",), changes, ("SADD", keys, *writes), fence, ("EXEC",))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unsure(self.fence, result) from exc
        self._watched = False
        if done is None:  # a watched key changed: nothing was written
            raise Again

    def validate(self) -> None:
        """The records read are as they were (a read of several keys, not watched): else run again."""
        generation, *values = self._send(("MGET", self._generation_key, *self._names))[0]
        if int(generation or 0) != self.generation or values != self._seen:
            raise Again

    def release(self) -> None:
        try:
            if self._watched:
                self._send(("UNWATCH",))  # a refused write: the connection goes back to the pool clean
        except redis.RedisError:
            self._connection.disconnect()
            raise
        finally:
            self._pool.release(self._connection)

    def _send(self, *commands: tuple) -> list[Any]:
        connection = self._connection
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            return [connection.read_response() for _ in commands]
        except BaseException:
            connection.disconnect()  # a half-read reply must never be read by the connection's next user
            self._watched = False  # and a closed connection's watches are gone with it
            raise


class Detached:
    """The link of a command whose session ended: it reads nothing (the fixtures' values stand) and writes nothing."""

    generation = None

    def read(self, name: str, expected_generation: int) -> None:
        return None
