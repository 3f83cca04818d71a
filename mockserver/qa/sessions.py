"""Per-test sessions: `X-Mock-Session: <id>` gives a request its own state, fault rules and journal.

Every session shares the fixed configuration and owns a store built from the fixtures on first use (moto's
account-per-header, extended to faults and journal). `Sessions` is the sessions' logic, written once: a
session is created by the first request that passes routing and authentication (or an admin call), so
unauthenticated traffic cannot fill the cap; a request in flight keeps its session alive; past
`max_sessions` a new id is refused rather than evicting one in use; sessions idle longer than `idle_s` end,
taking their state, rules and journal with them. What is live, and since when, is kept by a registry: this
process's (`LocalRegistry`), or one in Redis shared by every process (mockserver/qa/shared_sessions.py).

A session is created again as a new life (a number that never repeats): this process's handle on a session
(its store, rules and journal objects) belongs to one life, so what a request still in flight at the end of
a life does goes nowhere: it acts on the state that went with its session.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any, Protocol

from mockserver.errors import StoreUnavailable
from mockserver.qa.faults import FaultRules
from mockserver.qa.journal import Journal
from mockserver.state.model import State
from mockserver.state.store import Store

log = logging.getLogger("mockserver")
DEFAULT = "default"
SESSION_HEADER = "x-mock-session"
SESSION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
SWEEP_EVERY_S = 1.0  # at most one idle sweep a second, so the common path stays a lookup


class SessionRefused(Exception):
    """The request names a session it cannot have; the message says why (a 400 in the API's format)."""


@dataclass
class Session:
    """This process's handle on one life of a session."""

    id: str
    store: Store
    faults: FaultRules
    journal: Journal
    life: Any = None  # which life of the session (the registry's number; None for the default session)
    last_used: float = field(default_factory=time.monotonic)  # here: when a request of it last came or went
    in_flight: int = 0  # its requests running here


def session_id_of(header: str | None) -> str:
    """The session a request names (the default one without the header); SessionRefused if it breaks the pattern."""
    session_id = DEFAULT if header is None else header.strip()
    if not SESSION_ID.fullmatch(session_id):
        shown = session_id if len(session_id) <= 70 else session_id[:70] + "…"
        raise SessionRefused(f"X-Mock-Session '{shown}' must match ^[A-Za-z0-9._-]{{1,64}}$.")
    return session_id


def refusal_past_cap(session_id: str, max_sessions: int) -> str:
    return (
        f"X-Mock-Session '{session_id}': {max_sessions} sessions are live (--max-sessions); "
        "end one with DELETE /__admin/sessions/{id} or let idle ones expire."
    )


class Registry(Protocol):
    """Which sessions are live, since when and with how many requests; the cap; their ends. Each call is atomic."""

    max_sessions: int
    shared: bool  # other processes register too (a sweep then runs in the background, handles are only handles)

    def visit(self, session_id: str) -> tuple[bool, Any, Any]:
        """A request arrives: whether the session is live (its request counted), its rules' version and its life.
        A session idle past --session-idle with no request in flight ends here."""
        ...

    def enter(self, session_id: str) -> Any:
        """Make the session live (counted; a new life if it was not); its life, or None past --max-sessions."""
        ...

    def release(self, session_id: str, life: Any) -> None:
        """A request of the session's `life` ended (it is used now); one of a life that is over changes nothing."""
        ...

    def hold(self, session_id: str, seconds: float) -> bool:
        """A request of the session is about to wait `seconds`: keep it live meanwhile."""
        ...

    def end(self, session_id: str, lapsed_only: bool = False) -> str:
        """End it (or, `lapsed_only`, only if idle past --session-idle): 'live', 'lapsed' or 'none' as it stood."""
        ...

    def sweep(self) -> int:
        """End the sessions idle past --session-idle; how many."""
        ...

    def listed(self) -> list[dict]:
        """The live sessions as the admin API lists them, the default first, then by creation."""
        ...

    def live_here(self) -> set[str] | None:
        """The live sessions, when this registry knows them without asking anyone (None for a shared one)."""
        ...


class Visit:
    """One request's stay in its session. A session is created by the first request that needs it (one that
    passed routing and authentication), so requests refused before that never fill the cap; they are
    journaled in the default session until then."""

    def __init__(self, sessions: Sessions, session_id: str, session: Session | None, faults: Any = None, unavailable: Any = None):
        """`faults`: the session's rules as the request found them; `unavailable`: the registry's StoreUnavailable,
        when the session could not be looked up (a shared one only)."""
        self._sessions = sessions
        self.session_id = session_id
        self.session = session
        self.faults = faults  # the rules the exchange applies: none for a session not created yet (a new one has none)
        self.unavailable: StoreUnavailable | None = unavailable

    def enter(self) -> Session:
        """The session, created now if need be (SessionRefused past the cap; StoreUnavailable if the registry was)."""
        if self.unavailable is not None:
            raise self.unavailable
        if self.session is None:
            self.session = self._sessions._create(self.session_id)
        return self.session

    def keep_alive(self, seconds: float) -> None:
        """The request is about to wait `seconds` (a delay, a long poll): its session stays live meanwhile."""
        if self.session is not None and self.session.id != DEFAULT:
            self._sessions.registry.hold(self.session.id, seconds)

    @property
    def journal_session(self) -> Session:
        return self.session or self._sessions.default

    def close(self) -> None:
        if self.session is not None:
            self._sessions._release(self.session)


class Sessions:
    def __init__(
        self,
        registry: Registry,
        new_store: Callable[[str, Any], Store],
        new_faults: Callable[[str, Any], FaultRules],
        new_journal: Callable[[str, Any], Journal],
        default_store: Store,
        idle_s: float,
    ):
        """`new_store(id, life)`, `new_faults(id, life)`, `new_journal(id, life)`: a session's, for one life."""
        self.registry = registry
        self._new_store, self._new_faults, self._new_journal = new_store, new_faults, new_journal
        self._idle_s = idle_s
        self.default = Session(DEFAULT, default_store, new_faults(DEFAULT, None), new_journal(DEFAULT, None))
        self._handles: dict[str, tuple[Any, Session]] = {}  # a test session's id: its life here, and its handle
        self._lock = threading.Lock()
        self._swept = time.monotonic()
        self._sweeping = False

    def visit(self, header: str | None) -> Visit:
        """The session a request names, live or not yet; SessionRefused for an id that breaks the pattern. With a
        shared registry unreachable, the visit carries its StoreUnavailable (`Visit.unavailable`)."""
        session_id = session_id_of(header)
        self._sweep_now_and_then()
        try:
            live, version, life = self.registry.visit(session_id)
        except StoreUnavailable as unavailable:
            return Visit(self, session_id, None, unavailable=unavailable)
        if not live:
            return Visit(self, session_id, None)
        session = self.default if session_id == DEFAULT else self._handle(session_id, life)
        return Visit(self, session_id, session, session.faults.as_of(version))

    def _handle(self, session_id: str, life: Any) -> Session:
        """This process's handle on the session's `life`, held by the request: a new one for a new life (a request
        still holding the old one finds that life over). A late request of an older life gets one of its own."""
        with self._lock:
            held = self._handles.get(session_id)
            if held is not None and int(held[0]) > int(life):
                late = self._made(session_id, life)
                late.in_flight = 1
                return late
            if held is None or held[0] != life:
                held = self._handles[session_id] = (life, self._made(session_id, life))
            held[1].last_used = time.monotonic()
            held[1].in_flight += 1
            return held[1]

    def _made(self, session_id: str, life: Any) -> Session:
        made = self._new_store(session_id, life), self._new_faults(session_id, life), self._new_journal(session_id, life)
        return Session(session_id, *made, life=life)

    def _create(self, session_id: str) -> Session:
        life = self.registry.enter(session_id)
        if life is None:
            raise SessionRefused(refusal_past_cap(session_id, self.registry.max_sessions))
        return self._handle(session_id, life)

    def _release(self, session: Session) -> None:
        if session.id != DEFAULT:
            with self._lock:
                session.in_flight -= 1
                session.last_used = time.monotonic()
        self.registry.release(session.id, session.life)

    def listed(self) -> list[dict]:
        return self.registry.listed()

    def delete(self, session_id: str) -> bool:
        """End a session (in every process, with a shared registry): its state, rules and journal go; False if it
        was not live."""
        with self._lock:
            held = self._handles.get(session_id)
        where = self.registry.end(session_id)
        with self._lock:  # not a handle of a new life made meanwhile
            if self._handles.get(session_id) is held:
                self._handles.pop(session_id, None)
        return where == "live"

    def start_over(self, build: Callable[[], State], new_store: Callable[[str, Any], Store]) -> None:
        """New fixtures (`serve --reload`, one process's registry only): the default session starts again from
        them, test sessions end (made again from them, by `new_store`, on their next request)."""
        with self._lock:
            self._new_store = new_store
            ended, self._handles = list(self._handles), {}
        for session_id in ended:
            self.registry.end(session_id)
        self.default.store.rebuild(build)

    def _sweep_now_and_then(self) -> None:
        """At most once a second: have the registry end the sessions idle everywhere (in a thread for a shared one,
        so no request waits), and forget the handles of sessions that are over."""
        now = time.monotonic()
        if now - self._swept < SWEEP_EVERY_S:
            return
        with self._lock:
            if now - self._swept < SWEEP_EVERY_S or self._sweeping:
                return
            self._swept, self._sweeping = now, True
        if self.registry.shared:
            threading.Thread(target=self._sweep, name="mockserver-session-sweep", daemon=True).start()
        else:
            self._sweep()

    def _sweep(self) -> None:
        try:
            self.registry.sweep()
        except StoreUnavailable as exc:  # the requests answer 503 meanwhile; a later sweep ends what this one could not
            log.warning("could not end the sessions left idle, the shared store (Redis) is unavailable: %s", exc)
        finally:
            self._forget_ended()
            self._sweeping = False

    def _forget_ended(self) -> None:
        """Drop the handles of lives that are over: those the registry no longer has, or (a shared registry, which
        other processes end sessions in too) those idle here past --session-idle with nothing in flight."""
        now = time.monotonic()
        with self._lock:  # the registry asked under the handles' lock: no session is made between the two
            live = self.registry.live_here()
            for session_id, (_, held) in list(self._handles.items()):
                over = session_id not in live if live is not None else not held.in_flight and now - held.last_used > self._idle_s
                if over:
                    del self._handles[session_id]


@dataclass
class _Standing:
    """What this process's registry knows of one live session."""

    life: int
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_used: float = field(default_factory=time.monotonic)
    requests: int = 0
    in_flight: int = 0


class LocalRegistry:
    """This process's sessions: live while used, a request in flight keeping its session so; one lock for all."""

    shared = False

    def __init__(self, idle_s: float, max_sessions: int):
        self.max_sessions = max_sessions
        self._idle_s = idle_s
        self._lock = threading.Lock()
        self._lives = count(1)
        self._live: dict[str, _Standing] = {DEFAULT: _Standing(0)}

    def visit(self, session_id: str) -> tuple[bool, Any, Any]:
        now = time.monotonic()
        with self._lock:
            standing = self._live.get(session_id)
            if standing is not None and self._lapsed(session_id, standing, now):
                del self._live[session_id]
                standing = None
            if standing is None:
                return False, None, None
            self._count(standing, now)
            return True, None, standing.life

    def enter(self, session_id: str) -> Any:
        now = time.monotonic()
        with self._lock:
            standing = self._live.get(session_id)
            if standing is None:
                if len(self._live) - 1 >= self.max_sessions:
                    return None
                standing = self._live[session_id] = _Standing(next(self._lives))
            self._count(standing, now)
            return standing.life

    def release(self, session_id: str, life: Any) -> None:
        with self._lock:
            standing = self._live.get(session_id)
            if standing is not None and (session_id == DEFAULT or standing.life == life):
                standing.in_flight -= 1
                standing.last_used = time.monotonic()

    def hold(self, session_id: str, seconds: float) -> bool:
        """Nothing to do: a session with a request in flight is never swept here."""
        return session_id in self._live

    def end(self, session_id: str, lapsed_only: bool = False) -> str:
        with self._lock:
            standing = self._live.get(session_id)
            if standing is None or session_id == DEFAULT:
                return "none" if standing is None else "live"
            lapsed = self._lapsed(session_id, standing, time.monotonic())
            if lapsed_only and not lapsed:
                return "live"
            del self._live[session_id]
            return "lapsed" if lapsed else "live"

    def sweep(self) -> int:
        now = time.monotonic()
        with self._lock:
            idle = [i for i, standing in self._live.items() if self._lapsed(i, standing, now)]
            for session_id in idle:
                del self._live[session_id]
        return len(idle)

    def listed(self) -> list[dict]:
        now_wall, now = datetime.now(UTC), time.monotonic()
        with self._lock:
            standings = [(i, s) for i, s in self._live.items() if not self._lapsed(i, s, now)]
            return [_listed(i, s, now_wall, now) for i, s in standings]

    def live_here(self) -> set[str]:
        with self._lock:
            return set(self._live)

    def _lapsed(self, session_id: str, standing: _Standing, now: float) -> bool:
        return session_id != DEFAULT and not standing.in_flight and now - standing.last_used > self._idle_s

    def _count(self, standing: _Standing, now: float) -> None:
        standing.in_flight += 1
        standing.requests += 1
        standing.last_used = now


def _listed(session_id: str, standing: _Standing, now_wall: datetime, now: float) -> dict:
    used = now_wall.timestamp() - (now - standing.last_used)
    return {
        "id": session_id,
        "created": _stamp(standing.created),
        "last_used": _stamp(datetime.fromtimestamp(used, UTC)),
        "requests": standing.requests,
    }


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
