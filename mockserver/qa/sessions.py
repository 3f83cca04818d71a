"""Per-test sessions: `X-Mock-Session: <id>` gives a request its own state, fault rules and journal.

Every session shares the fixed configuration and owns a store built from
the fixtures on first use (moto's account-per-header, extended to faults and
journal). A session is created by the first request that passes routing and
authentication (or an admin call), so unauthenticated traffic cannot fill
the cap. Sessions idle longer than `idle_s` are dropped when the registry is
next touched; a session with a request in flight is never dropped, and past
`max_sessions` a new id is refused rather than evicting one in use.

This is one process's registry; with a shared store (Redis) every process
uses the one in mockserver/qa/shared_sessions.py instead.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mockserver.errors import StoreUnavailable
from mockserver.qa.faults import FaultRules
from mockserver.qa.journal import Journal, LocalEntries
from mockserver.state.model import State
from mockserver.state.store import Store

DEFAULT = "default"
SESSION_HEADER = "x-mock-session"
SESSION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
SWEEP_EVERY_S = 1.0  # at most one idle sweep a second, so the common path stays a dict lookup


class SessionRefused(Exception):
    """The request names a session it cannot have; the message says why (a 400 in the API's format)."""


@dataclass
class Session:
    id: str
    store: Store
    faults: FaultRules
    journal: Journal
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_used: float = field(default_factory=time.monotonic)
    requests: int = 0
    in_flight: int = 0

    def as_json(self, now_wall: datetime, now: float) -> dict:
        used = now_wall.timestamp() - (now - self.last_used)
        return {
            "id": self.id,
            "created": _stamp(self.created),
            "last_used": _stamp(datetime.fromtimestamp(used, UTC)),
            "requests": self.requests,
        }


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
    """What a visit asks of the sessions it belongs to: this process's (`Sessions`), or the shared ones
    (mockserver/qa/shared_sessions.py)."""

    default: Session

    def _create(self, session_id: str) -> Session: ...

    def _release(self, session: Session) -> None: ...

    def keep_alive(self, session: Session, seconds: float) -> None: ...


class Visit:
    """One request's stay in its session. A session is created by the first request that needs it (one that
    passed routing and authentication), so requests refused before that never fill the cap; they are
    journaled in the default session until then."""

    def __init__(
        self,
        sessions: Registry,
        session_id: str,
        session: Session | None,
        faults: Any = None,
        unavailable: StoreUnavailable | None = None,
    ):
        """`sessions`: this process's `Sessions`, or the shared ones (mockserver/qa/shared_sessions.py); `faults`:
        the session's rules as the request found them; `unavailable`: the store's error, when the session could
        not be looked up (a shared store only)."""
        self._sessions = sessions
        self.session_id = session_id
        self.session = session
        self.faults = faults  # the rules the pipeline applies: none for a session not created yet (a new one has none)
        self.unavailable = unavailable

    def enter(self) -> Session:
        """The session, created now if need be (SessionRefused past the cap; StoreUnavailable if the store was)."""
        if self.unavailable is not None:
            raise self.unavailable
        if self.session is None:
            self.session = self._sessions._create(self.session_id)
        return self.session

    def keep_alive(self, seconds: float) -> None:
        """The request is about to wait `seconds` (a delay, a long poll): its session stays live meanwhile."""
        if self.session is not None:
            self._sessions.keep_alive(self.session, seconds)

    @property
    def journal_session(self) -> Session:
        return self.session or self._sessions.default

    def close(self) -> None:
        if self.session is not None:
            self._sessions._release(self.session)


class Sessions:
    def __init__(
        self,
        new_store: Callable[[str], Store],
        journal_size: int,
        idle_s: float,
        max_sessions: int,
        default_store: Store,
    ):
        self._new_store = new_store
        self._journal_size = journal_size
        self._idle_s = idle_s
        self._max = max_sessions
        self._lock = threading.Lock()
        self._swept = time.monotonic()
        self.default = Session(DEFAULT, default_store, FaultRules(), Journal(LocalEntries(journal_size)))
        self._sessions: dict[str, Session] = {DEFAULT: self.default}

    def visit(self, header: str | None) -> Visit:
        """The session a request names, if it exists yet; raise SessionRefused for an id that breaks the pattern."""
        session_id = session_id_of(header)
        now = time.monotonic()
        with self._lock:
            if now - self._swept >= SWEEP_EVERY_S:
                self._sweep(now)
            session = self._sessions.get(session_id)
            if session is not None:
                self._hold(session, now)
        return Visit(self, session_id, session, session.faults if session is not None else None)

    def _create(self, session_id: str) -> Session:
        """A new session (or one another request created meanwhile), held in use; SessionRefused past the cap."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                if len(self._sessions) - 1 >= self._max:
                    raise SessionRefused(refusal_past_cap(session_id, self._max))
                session = Session(session_id, self._new_store(session_id), FaultRules(), Journal(LocalEntries(self._journal_size)))
                self._sessions[session_id] = session
            self._hold(session, time.monotonic())
            return session

    def _hold(self, session: Session, now: float) -> None:
        session.in_flight += 1
        session.requests += 1
        session.last_used = now

    def _release(self, session: Session) -> None:
        with self._lock:
            session.in_flight -= 1
            session.last_used = time.monotonic()

    def keep_alive(self, session: Session, seconds: float) -> None:
        """Nothing to do: a session with a request in flight is never swept here."""

    def _sweep(self, now: float) -> None:
        self._swept = now
        idle = [s.id for s in self._sessions.values() if s.id != DEFAULT and not s.in_flight and now - s.last_used > self._idle_s]
        for session_id in idle:
            del self._sessions[session_id]

    def start_over(self, build: Callable[[], State], new_store: Callable[[str], Store]) -> None:
        """New fixtures (`serve --reload`): the default session starts again from them, test sessions are dropped
        (built again from them, by `new_store`, on their next request)."""
        with self._lock:
            self._new_store = new_store
            self._sessions = {DEFAULT: self.default}
        self.default.store.rebuild(build)

    def listed(self) -> list[dict]:
        now_wall, now = datetime.now(UTC), time.monotonic()
        with self._lock:
            self._sweep(now)
            return [s.as_json(now_wall, now) for s in self._sessions.values()]

    def delete(self, session_id: str) -> bool:
        """End a session, dropping its state, rules and journal; False if there is no such session."""
        with self._lock:
            return self._sessions.pop(session_id, None) is not None


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
