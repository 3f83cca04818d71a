"""Talking to the shared store's Redis: the client, the scripts every request runs, and what a failure means.

Every Redis backend (the state: redis_store.py; the QA toolkit's rules, journal and sessions:
mockserver/qa/shared_*.py) reaches Redis through these. A Redis that cannot answer is one error,
`StoreUnavailable`, raised with a message saying what was (not) done; the exchange answers it with the
operation's documented 503 in the API's own format (mockserver/http/exchange.py), nothing else does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

from mockserver.errors import StoreUnavailable

UNAVAILABLE = "The mock's shared store (Redis) is unavailable ({}); nothing was changed, retry."
UNAVAILABLE_TO_READ = "The mock's shared store (Redis) is unavailable ({}); retry."  # a read: nothing to change
UNSURE = (
    "The mock's shared store (Redis) stopped answering while this change was being written ({}); it may or may not"
    " have been made: read before you retry."
)


@contextlib.contextmanager
def unavailable_as(message: str = UNAVAILABLE) -> Iterator[None]:
    """Redis errors as StoreUnavailable (`message` formatted with the error's kind)."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(message.format(type(exc).__name__)) from exc


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


LUA = Path(__file__).with_name("lua")  # the Redis backends' scripts, one file each


class LuaScript:
    """A script of mockserver/state/lua/ whose keys and arguments have names: it runs after a prelude that binds
    each (`local rules = KEYS[2]`), and is called with them by name, so neither side counts positions.

    `common` files come between the prelude and the script (functions several scripts share)."""

    def __init__(self, client: redis.Redis, name: str, keys: Sequence[str], args: Sequence[str], common: Sequence[str] = ()):
        if len({*keys, *args}) != len(keys) + len(args):
            raise ValueError(f"{name}: a key and an argument share a name")
        self.keys, self.args = tuple(keys), tuple(args)
        self._names = frozenset((*keys, *args))
        self.arg_names = frozenset(args)
        prelude = [f"local {key} = KEYS[{n}]" for n, key in enumerate(keys, 1)]
        prelude += [f"local {arg} = ARGV[{n}]" for n, arg in enumerate(args, 1)]
        sources = [(LUA / f"{part}.lua").read_text(encoding="utf-8") for part in (*common, name)]
        self._client = client
        self._script = client.register_script("\n".join([*prelude, *sources]))

    def __call__(self, **named: Any) -> Any:
        """Run it through redis-py (a pipeline's retries, its errors) with every key and argument by name."""
        keys, args = self._split(named)
        return self._script(keys=keys, args=args)

    def fast(self, **named: Any) -> Any:
        """Run it past redis-py's command layer (`run_script`): for the scripts every request runs."""
        keys, args = self._split(named)
        return run_script(self._client, self._script, keys, args)

    def bound(self, **keys: str) -> Bound:
        """The script with its keys given once (a session's, a journal's): each call then names its arguments only."""
        if keys.keys() != set(self.keys):
            raise TypeError(f"keys {self.keys} are wanted, not {sorted(keys)}")
        return Bound(self, [keys[key] for key in self.keys])

    def _split(self, named: dict[str, Any]) -> tuple[list, list]:
        if named.keys() != self._names:
            raise TypeError(f"keys {self.keys} and arguments {self.args} are wanted, not {sorted(named)}")
        return [named[key] for key in self.keys], [named[arg] for arg in self.args]


class Bound:
    """A LuaScript with its keys in place, for the scripts every request runs: no key is looked up per call."""

    def __init__(self, script: LuaScript, keys: list[str]):
        self._script, self._keys = script, keys

    def fast(self, **args: Any) -> Any:
        if args.keys() != self._script.arg_names:
            raise TypeError(f"arguments {self._script.args} are wanted, not {sorted(args)}")
        return run_script(self._script._client, self._script._script, self._keys, [args[arg] for arg in self._script.args])
