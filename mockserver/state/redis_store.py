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

import contextlib
import hashlib
import itertools
import logging
import queue
import random
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.commands.core import Script

from mockserver.errors import ApiError
from mockserver.state import codec
from mockserver.state.changes import Write
from mockserver.state.fixtures import FixtureError
from mockserver.state.model import State
from mockserver.state.sources import Clock

log = logging.getLogger("mockserver")
T = TypeVar("T")
GONE = b"-"  # a record removed (a merged source): not the fixture's value
RETRIES = 50  # a command that loses the race this often is answered 503
FENCE_MS = 60_000  # how long a transaction's fence outlives it: far longer than any answer can be late
UNAVAILABLE = "The mock's shared store (Redis) is unavailable ({}); nothing was changed, retry."
UNAVAILABLE_TO_READ = "The mock's shared store (Redis) is unavailable ({}); retry."  # a read: nothing to change
UNSURE = (
    "The mock's shared store (Redis) stopped answering while this change was being written ({}); it may or may not"
    " have been made: read before you retry."
)


@contextlib.contextmanager
def answered_503(message: str = UNAVAILABLE) -> Iterator[None]:
    """Redis errors as the documented 503 (`message` formatted with the error's kind)."""
    try:
        yield
    except redis.RedisError as exc:
        raise ApiError(503, message.format(type(exc).__name__)) from exc


def run_script(client: redis.Redis, script: Script, keys: list, args: list) -> Any:
    """`script(keys, args)` on a pooled connection, past redis-py's command layer: about 30 µs of CPU less a
    call here, for the scripts every request runs. A Redis that lost the script (restarted) is given it again."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        # types-redis, redis 4's stubs, leave out Script.sha (set by Script.__init__).
        connection.send_packed_command(connection.pack_command("EVALSHA", script.sha, len(keys), *keys, *args))  # type: ignore[attr-defined]
        return connection.read_response()
    except redis.exceptions.NoScriptError:  # a whole reply was read, the connection is clean: load it and run
        return script(keys=keys, args=args)
    except BaseException:
        connection.disconnect()  # a half-read reply must never be read by the connection's next user
        raise
    finally:
        pool.release(connection)


def connect(url: str) -> redis.Redis:
    """A client for `--store`; short timeouts, so an unreachable Redis is a prompt 503, not a hung request."""
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, retry_on_timeout=False)


# A session's new generation (KEYS[1]) from the namespace's counter (KEYS[2]); returns the old one (0: none),
# or -1 if the session's life (KEYS[3]) is not ARGV[1] any more ('' for the default session, which has one).
_NEW_GENERATION = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local old = redis.call('GET', KEYS[1]) or '0'
redis.call('SET', KEYS[1], redis.call('INCR', KEYS[2]))
return old
"""


# A new id from a generation's counter (KEYS[3]), if the session's life (KEYS[1]) is still ARGV[1] ('' for the
# default session) and its generation (KEYS[2]) still ARGV[2]: {'id', value}; else {'ended'}, or {'stale', the
# generation now} (the old one's keys may be unlinked already: a counter made again there would stay for ever).
_NEXT_ID = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'ended'} end
local generation = redis.call('GET', KEYS[2]) or '0'
if generation ~= ARGV[2] then return {'stale', generation} end
return {'id', redis.call('INCR', KEYS[3])}
"""


def generations_key(namespace: str) -> str:
    """The counter every session's generations come from."""
    return f"{namespace}:generations"


class RedisStores:
    """Makes the store of each session, all under `namespace`, over one fixture state shared read-only."""

    def __init__(self, client: redis.Redis, namespace: str, base: State):
        self._client, self._namespace, self._base = client, namespace, base
        self._first_id = base.sources.ids.peek()
        self._new_generation = client.register_script(_NEW_GENERATION)
        self._next_id = client.register_script(_NEXT_ID)

    def new(self, session_id: str, life: bytes | None = None) -> RedisStore:
        """The store of one life of a session (`life`, from the session registry, mockserver/qa/shared_sessions.py;
        None for the default session, which never ends). A session that ends and starts again is a new life
        with a new generation, from the fixtures; a store of the life that ended changes nothing any more."""
        prefix = f"{self._namespace}:{session_id}:"
        keys = [prefix + "gen", generations_key(self._namespace), prefix + "life"]
        new_generation = partial(self._new_generation, keys, [life or b""])
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
        next_id: Script,
    ):
        """`new_generation()` moves the session to a new generation and returns the old one (-1: its life is over);
        `next_id`: the script that draws a new id (`_NEXT_ID`)."""
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
        """Run `command(state, *args)` as one optimistic transaction; raise ApiError(503) if Redis fails it."""
        try:
            for _ in range(RETRIES):
                link = _Link(self._client, self._prefix, isinstance(command, Write), self._life)
                try:
                    return self._attempt(link, command, args)
                except _Again:
                    continue
                except _Ended:
                    return self._detached(command, args)
                except _Unsure as unsure:  # the EXEC went out, its answer did not come back: find out, and fence it
                    if self._committed(unsure.fence):
                        return unsure.result
                finally:
                    link.release()
        except redis.RedisError as exc:
            raise ApiError(503, UNAVAILABLE.format(type(exc).__name__)) from exc
        raise ApiError(503, UNAVAILABLE.format(f"{RETRIES} conflicting changes in a row"))

    def _committed(self, fence: str) -> bool:
        """Whether a transaction whose answer was lost committed. It set `fence` if it did; setting it now
        otherwise makes a late EXEC fail (the fence is watched), so running the command again is safe."""
        try:
            return not self._client.set(fence, b"aborted", nx=True, px=FENCE_MS)
        except redis.RedisError as exc:
            raise ApiError(503, UNSURE.format(type(exc).__name__)) from exc

    def _attempt(self, link: _Link, command: Callable[..., T], args: tuple) -> T:
        """One try on the generation last seen. A write's records are watched, its changes written in one
        MULTI/EXEC; a read of several records is read again to check nothing changed in between, so it never
        mixes values from before and after another process's change."""
        generation = self._generation
        view = _View(self._client, link, f"{self._prefix}{generation}:", generation, self._base, self._sources(generation))
        try:
            result = command(view.state, *args)
        except _Stale as stale:
            self._generation = stale.generation
            raise _Again from None
        if link.generation is not None:
            self._generation = link.generation
        writes = view.writes()
        if writes:
            link.commit(writes, result, keys_of(self._prefix, generation))
        elif view.reads > 1:
            link.validate()
        return result

    def _sources(self, generation: int) -> Any:
        keys = [self._prefix + "life", self._prefix + "gen", f"{self._prefix}{generation}:next_id"]
        ids = _Ids(partial(self._next_id, keys, [self._life or b"", generation]), self._client, keys[2], self._first_id)
        return _Sources(self._clock, ids, self._random)

    def _detached(self, command: Callable[..., T], args: tuple) -> T:
        """The command of a request whose session ended while it ran: as in memory, where it runs on the state
        that went with the session, it is answered and its changes go nowhere. Here the state it reads is the
        fixtures' (the ended life's is being removed), and nothing is written."""
        sources = _Sources(self._clock, _LocalIds(self._first_id), self._random)
        view = _View(self._client, _Detached(), f"{self._prefix}detached:", 0, self._base, sources)
        return command(view.state, *args)

    def reset(self, syncs: list | None = None) -> None:
        """Back to the fixtures for every process: a new generation; the old one's keys are unlinked meanwhile."""
        with answered_503():
            old = int(self._new_generation())
        if old >= 0:
            unlink_generation(self._client, self._prefix, old)

    def rebuild(self, build: Callable[[], State]) -> None:
        """New fixtures: this process serves them as the base, and the session starts again."""
        self._base = build()
        self.reset()

    def ping(self) -> None:
        """Raise ApiError(503) if Redis does not answer (the health check's)."""
        with answered_503():
            self._client.ping()


class _View:
    """The state a command sees in one attempt: the fixture state's shape, every collection backed by Redis."""

    def __init__(self, client: redis.Redis, link: _Link | _Detached, prefix: str, generation: int, base: State, sources: Any):
        self._client = client
        self._link = link
        self._generation = generation
        self._keys = prefix + "keys"  # what keys_of() names for this generation
        self._tracked: list[_Tracked] = []
        families = {}
        for name, section in base.sections.items():
            mappings = section.mappings(base[name])
            tracked = {
                collection.name: self._track(
                    f"{prefix}{name}:{collection.name}:", mappings[collection.name], _record_codec if collection.id_field else _set_codec
                )
                for collection in section.collections(base[name])
            }
            families[name] = section.over(base[name], tracked, sources)  # type: ignore[arg-type]
        self.state = State(families, sources, base.sections)

    def _track(self, prefix: str, base: Mapping, codec: _Codec) -> _Tracked:
        tracked = _Tracked(self._client, self._read, prefix, base, codec, self._keys)
        self._tracked.append(tracked)
        return tracked

    def _read(self, name: str) -> bytes | None:
        return self._link.read(name, self._generation)

    def writes(self) -> dict[str, bytes]:
        return {key: raw for tracked in self._tracked for key, raw in tracked.changed()}

    @property
    def reads(self) -> int:
        return sum(tracked.reads for tracked in self._tracked)


class _Codec:
    def __init__(self, dump: Callable[[Any], bytes], load: Callable[[bytes], Any]):
        self.dump, self.load = dump, load


_record_codec = _Codec(codec.text, codec.loads)
_set_codec = _Codec(lambda members: codec.text(sorted(members)), lambda raw: set(codec.loads(raw)))


class _Tracked:
    """A mapping over Redis keys `prefix + key`, falling back to `base` (the fixtures).

    A key is read once per attempt (watched first, for a write); the values handed out are the command's
    own copies, compared with what was read to find what changed.
    """

    def __init__(self, client: redis.Redis, read: Callable[[str], bytes | None], prefix: str, base: Mapping, codec: _Codec, keys: str):
        """`keys`: the set of the keys the generation wrote (`keys_of`)."""
        self._client = client
        self._keys = keys
        self._get = read
        self._prefix = prefix
        self._base = base
        self._codec = codec
        self._read: dict[str, tuple[bytes, Any]] = {}  # key -> (as read, the command's value; None: absent)

    def _value(self, key: str) -> Any:
        seen = self._read.get(key)
        if seen is None:
            raw = self._get(self._prefix + key)
            if raw is None:
                raw = GONE if key not in self._base else self._codec.dump(self._base[key])
            seen = self._read[key] = (raw, None if raw == GONE else self._codec.load(raw))
        return seen[1]

    def get(self, key: str, default: Any = None) -> Any:
        value = self._value(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        value = self._value(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._value(key) is not None

    def __setitem__(self, key: str, value: Any) -> None:
        self._read[key] = (self._raw_read(key), value)

    def __delitem__(self, key: str) -> None:
        if self._value(key) is None:
            raise KeyError(key)
        self._read[key] = (self._raw_read(key), None)

    def setdefault(self, key: str, default: Any) -> Any:
        value = self._value(key)
        if value is None:
            self[key] = value = default
        return value

    def _raw_read(self, key: str) -> bytes:
        self._value(key)  # watched and read even when only written: a concurrent write must fail this attempt
        return self._read[key][0]

    def changed(self) -> Iterator[tuple[str, bytes]]:
        for key, (raw, value) in self._read.items():
            now = GONE if value is None or (isinstance(value, set) and not value) else self._codec.dump(value)
            if now != raw and not (now == GONE and raw == GONE):
                yield self._prefix + key, now

    def values(self) -> Iterator[Any]:
        """Every current value, the fixtures' then those only Redis holds, read a chunk at a time as iterated
        (the admin state view takes the first few: it reads no more). Read, not watched.

        The keys are read outside the attempt's link, so each chunk is followed by one read through it: it
        raises _Stale when the session was reset meanwhile (a reset elsewhere, or this store's own), and the
        command runs again on the new generation, rather than listing records of the old one, which the
        background unlink may have half removed."""
        self._get(self._prefix)  # a key no record has: read for its generation check only
        written = self._client.sscan_iter(self._keys, match=self._prefix + "*", count=1000)
        only_stored = sorted({name for name in (key.decode()[len(self._prefix) :] for key in written) if name not in self._base})
        keys = iter([*self._base, *only_stored])
        while chunk := list(itertools.islice(keys, 500)):
            values = self._client.mget([self._prefix + key for key in chunk])
            self._get(self._prefix)  # still the generation the chunk was read in
            for key, raw in zip(chunk, values, strict=True):
                if raw is None:
                    yield self._base[key]
                elif raw != GONE:
                    yield self._codec.load(raw)

    @property
    def reads(self) -> int:
        return len(self._read)


class _Again(Exception):
    """This attempt cannot stand: run the command again."""


class _Stale(_Again):
    """The session was reset since the generation this attempt reads: run again on `generation`."""

    def __init__(self, generation: int):
        super().__init__(generation)
        self.generation = generation


class _Ended(Exception):
    """The session's life this store belongs to is over (deleted, or idle past --session-idle)."""


class _Unsure(Exception):
    """The EXEC was sent, and the connection broke before its answer came."""

    def __init__(self, fence: str, result: Any):
        super().__init__(fence)
        self.fence, self.result = fence, result


class _Link:
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
        """The value of `name` (watched for a write); raises _Stale if the session's generation moved on, _Ended
        if its life did (a life ends with its generation, so watching the generation watches both)."""
        watch = [("WATCH", self._generation_key, self.fence, name)] if self._watching else []
        generation, *life, value = self._send(*watch, ("MGET", *self._checked, name))[-1]
        self._watched |= self._watching
        if life and life[0] != self._life:
            raise _Ended
        self.generation = int(generation or 0)
        if self.generation != expected_generation:
            raise _Stale(self.generation)
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
            raise _Unsure(self.fence, result) from exc
        self._watched = False
        if done is None:  # a watched key changed: nothing was written
            raise _Again

    def validate(self) -> None:
        """The records read are as they were (a read of several keys, not watched): else run again."""
        generation, *values = self._send(("MGET", self._generation_key, *self._names))[0]
        if int(generation or 0) != self.generation or values != self._seen:
            raise _Again

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


class _Detached:
    """The link of a command whose session ended: it reads nothing (the fixtures' values stand) and writes nothing."""

    generation = None

    def read(self, name: str, expected_generation: int) -> None:
        return None


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


class _Ids:
    """New ids from one counter per session and generation, shared by every process."""

    def __init__(self, draw: Callable[[], list], client: redis.Redis, key: str, first_id: int):
        """`draw()`: the counter's next value, if still to be drawn (`_NEXT_ID`); `key`: the counter's, for `peek`."""
        self._draw, self._client, self._key, self._first_id = draw, client, key, first_id

    def next(self) -> str:
        kind, *value = self._draw()
        if kind == b"ended":
            raise _Ended
        if kind == b"stale":  # the session was reset meanwhile: the command runs again on the new generation
            raise _Stale(int(value[0]))
        return str(self._first_id + int(value[0]) - 1)

    def peek(self) -> int:
        return self._first_id + int(self._client.get(self._key) or 0)


class _LocalIds:
    """Ids of a command whose changes go nowhere (`RedisStore._detached`): it must not draw from the shared counter."""

    def __init__(self, first_id: int):
        self._next = first_id

    def next(self) -> str:
        self._next += 1
        return str(self._next - 1)

    def peek(self) -> int:
        return self._next


class _Sources:
    def __init__(self, clock: Clock, ids: _Ids | _LocalIds, rng: random.Random):
        self.clock, self.ids, self.random = clock, ids, rng
