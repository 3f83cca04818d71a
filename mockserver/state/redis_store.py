"""The state of both APIs in Redis, shared by every process pointing at it (`serve --store redis://HOST:PORT/DB`).

The domain code runs unchanged: `RedisStore.run` hands a command a state
whose collections are mappings backed by Redis. Each record the command
reads is WATCHed, then fetched (one key a record, never one big value);
when the command returns, the records it changed are written in one
MULTI/EXEC. If another process changed a watched record meanwhile, EXEC
fails and the command runs again from scratch: commands check everything
before they change anything, so a re-run is safe, and every change is
atomic across processes. No domain rule is copied into Lua.

Redis holds only what differs from the fixtures, which every process has
loaded: a key holds a record's current value, or a tombstone if it was
removed; a missing key means "as in the fixtures". So a reset is one new
generation for the session, whatever the number of customers: each
transaction adds the names it writes to its generation's set (`keys_of`),
and one thread a process unlinks the set's keys once the generation is over,
never scanning Redis. Generation numbers come from one counter of the
namespace, so a session id used again never meets a generation of its
earlier life; a store belongs to one life of its session (the session
registry's, mockserver/qa/shared_sessions.py), and a command of a life that
ended is answered as in memory, changing nothing. New ids come from a counter
per generation, drawn only while the generation and the life stand. Every
collection a family declares (mockserver/state/section.py) is one key per
record, `FAMILY:COLLECTION:ID` under the session's generation; an index
(Relay's phone numbers) is one key per entry, copied on write like the
records.

Redis unreachable, or a command losing the race too often, is the
operation's documented 503, in the API's own error format; nothing half
done, and the next request reconnects by itself.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import queue
import random
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import redis

from mockserver.errors import StoreUnavailable
from mockserver.state.changes import Write
from mockserver.state.fixtures import FixtureError
from mockserver.state.model import State
from mockserver.state.redis_client import UNAVAILABLE, UNSURE, LuaScript, unavailable_as
from mockserver.state.redis_transaction import FENCE_MS, Again, Detached, Ended, Link, Stale, Unsure
from mockserver.state.redis_view import Ids, LocalIds, Sources, View
from mockserver.state.sources import Clock

log = logging.getLogger("mockserver")
T = TypeVar("T")
RETRIES = 50  # a command that loses the race this often is answered 503


def generations_key(namespace: str) -> str:
    """The counter every session's generations come from."""
    return f"{namespace}:generations"


class RedisStores:
    """Makes the store of each session, all under `namespace`, over one fixture state shared read-only."""

    def __init__(self, client: redis.Redis, namespace: str, base: State):
        self._client, self._namespace, self._base = client, namespace, base
        self._first_id = base.sources.ids.peek()
        self._new_generation = LuaScript(client, "generation_new", ("generation", "generations", "life"), ("owner",))
        self._next_id = LuaScript(client, "id_next", ("life", "generation", "counter"), ("owner", "expected"))

    def new(self, session_id: str, life: bytes | None = None) -> RedisStore:
        """The store of one life of a session (`life`, from the session registry, mockserver/qa/shared_sessions.py;
        None for the default session, which never ends). A session that ends and starts again is a new life
        with a new generation, from the fixtures; a store of the life that ended changes nothing any more."""
        prefix = f"{self._namespace}:{session_id}:"
        keys = {"generation": prefix + "gen", "generations": generations_key(self._namespace), "life": prefix + "life"}
        new_generation = partial(self._new_generation, **keys, owner=life or b"")
        return RedisStore(self._client, prefix, self._base, self._first_id, new_generation, life, self._next_id)


def claim_namespace(client: redis.Redis, namespace: str, fixtures: Path) -> str:
    """Every process of a namespace must serve the same fixtures (Redis holds only differences from them):
    the first to start records the file's digest, the others must match it. Raises FixtureError otherwise,
    or when Redis cannot be reached (a start that cannot serve should not look as if it could).

    Returns the digest. The keys are under it too: should the record go (a Redis restart without
    persistence), processes serving other fixtures still never read each other's differences.
    """
    digest = hashlib.sha256(fixtures.read_bytes()).hexdigest()
    try:
        client.set(f"{namespace}:fixtures", digest, nx=True)
        recorded = client.get(f"{namespace}:fixtures")
    except redis.RedisError as exc:
        raise FixtureError(f"--store: cannot reach Redis: {exc}") from exc
    if recorded is not None and recorded.decode() != digest:
        raise FixtureError(
            f"--store: namespace '{namespace}' is in use with other fixtures than {fixtures}; every process sharing it must"
            f" load the same fixture file: use it, or another --namespace (to start the namespace over, delete its keys:"
            f" redis-cli --scan --pattern '{namespace}:*' | xargs redis-cli unlink)"
        )
    return digest


class RedisStore:
    """One session's state in Redis under `prefix`; `base` is the fixture state (read, never changed)."""

    recorder = None  # a state file is for the in-memory store only

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        base: State,
        first_id: int,
        new_generation: Callable[[], bytes],
        life: bytes | None,
        next_id: LuaScript,
    ):
        """`new_generation()` moves the session to a new generation and returns the old one (-1: its life is over);
        `next_id`: the script that draws a new id (lua/id_next.lua)."""
        self._client = client
        self._new_generation = new_generation
        self._life = life
        self._next_id = next_id
        self._prefix = prefix
        self._base = base
        self._first_id = first_id
        self._clock = Clock()
        self._random = random.Random()
        self._generation = 0  # the last one seen; every read checks it, a reset elsewhere means one re-run

    def run(self, command: Callable[..., T], *args: Any, syncs: list | None = None) -> T:
        """Run `command(state, *args)` as one optimistic transaction; raise StoreUnavailable if Redis fails it."""
        try:
            for _ in range(RETRIES):
                link = Link(self._client, self._prefix, isinstance(command, Write), self._life)
                try:
                    return self._attempt(link, command, args)
                except Again:
                    continue
                except Ended:
                    return self._detached(command, args)
                except Unsure as unsure:  # the EXEC went out, its answer did not come back: find out, and fence it
                    if self._committed(unsure.fence):
                        return unsure.result
                finally:
                    link.release()
        except redis.RedisError as exc:
            raise StoreUnavailable(UNAVAILABLE.format(type(exc).__name__)) from exc
        raise StoreUnavailable(UNAVAILABLE.format(f"{RETRIES} conflicting changes in a row"))

    def _committed(self, fence: str) -> bool:
        """Whether a transaction whose answer was lost committed. It set `fence` if it did; setting it now
        otherwise makes a late EXEC fail (the fence is watched), so running the command again is safe."""
        try:
            return not self._client.set(fence, b"aborted", nx=True, px=FENCE_MS)
        except redis.RedisError as exc:
            raise StoreUnavailable(UNSURE.format(type(exc).__name__)) from exc

    def _attempt(self, link: Link, command: Callable[..., T], args: tuple) -> T:
        """One try on the generation last seen. A write's records are watched, its changes written in one
        MULTI/EXEC; a read of several records is read again to check nothing changed in between, so it never
        mixes values from before and after another process's change."""
        generation = self._generation
        view = View(self._client, link, f"{self._prefix}{generation}:", generation, self._base, self._sources(generation))
        try:
            result = command(view.state, *args)
        except Stale as stale:
            self._generation = stale.generation
            raise Again from None
        if link.generation is not None:
            self._generation = link.generation
        writes = view.writes()
        if writes:
            link.commit(writes, result, keys_of(self._prefix, generation))
        elif view.reads > 1:
            link.validate()
        return result

    def _sources(self, generation: int) -> Any:
        counter = f"{self._prefix}{generation}:next_id"
        keys = {"life": self._prefix + "life", "generation": self._prefix + "gen", "counter": counter}
        draw = partial(self._next_id, **keys, owner=self._life or b"", expected=generation)
        ids = Ids(draw, self._client, counter, self._first_id)
        return Sources(self._clock, ids, self._random)

    def _detached(self, command: Callable[..., T], args: tuple) -> T:
        """The command of a request whose session ended while it ran: as in memory, where it runs on the state
        that went with the session, it is answered and its changes go nowhere. Here the state it reads is the
        fixtures' (the ended life's is being removed), and nothing is written."""
        sources = Sources(self._clock, LocalIds(self._first_id), self._random)
        view = View(self._client, Detached(), f"{self._prefix}detached:", 0, self._base, sources)
        return command(view.state, *args)

    def reset(self, syncs: list | None = None) -> None:
        """Back to the fixtures for every process: a new generation; the old one's keys are unlinked meanwhile."""
        with unavailable_as():
            old = int(self._new_generation())
        if old >= 0:
            unlink_generation(self._client, self._prefix, old)

    def rebuild(self, build: Callable[[], State]) -> None:
        """New fixtures: this process serves them as the base, and the session starts again."""
        self._base = build()
        self.reset()

    def ping(self) -> None:
        """Raise StoreUnavailable if Redis does not answer (the health check's)."""
        with unavailable_as():
            self._client.ping()


def keys_of(prefix: str, generation: int) -> str:
    """The set of the keys a session's generation wrote: what is unlinked when it is over, with no SCAN of Redis."""
    return f"{prefix}{generation}:keys"


def unlink_generation(client: redis.Redis, prefix: str, generation: int) -> None:
    """Remove, in the background, the keys of a session's generation that is over (never read again)."""
    _unlinks.put((client, prefix, generation))
    global _unlinker
    with _unlinker_lock:
        if _unlinker is None or not _unlinker.is_alive():
            _unlinker = threading.Thread(target=_unlink_queued, name="mockserver-unlink", daemon=True)
            _unlinker.start()


_unlinks: queue.SimpleQueue = queue.SimpleQueue()
_unlinker: threading.Thread | None = None
_unlinker_lock = threading.Lock()


def _unlink_queued() -> None:
    """One thread a process unlinks the generations that are over, one after another."""
    while True:
        client, prefix, generation = _unlinks.get()
        try:
            keys = keys_of(prefix, generation)
            members = client.sscan_iter(keys, count=1000)
            while batch := list(itertools.islice(members, 1000)):
                client.unlink(*batch)
            client.unlink(keys, f"{prefix}{generation}:next_id")
        except redis.RedisError as exc:  # only space is lost; the keys are never read again
            log.warning("could not remove the keys of generation %d of %s: %s", generation, prefix, exc)
