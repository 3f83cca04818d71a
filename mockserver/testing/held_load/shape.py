"""What a held load is made of (its shape), and what the server did to it (its report).

Filled in by connections.py while `hold()` runs; see the package's docstring.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

RequestTemplate = bytes | Callable[[int], bytes]  # a fixed raw request, or one built from its index


def repeat(template: RequestTemplate | None, count: int) -> list[bytes]:
    """`count` raw requests from a fixed request or a function of the index (None: no requests)."""
    if template is None:
        return []
    return [template(i) if callable(template) else template for i in range(count)]


def long_poll_request(base_url: str, timeout_ms: int = 30_000) -> bytes:
    """A journal long poll that nothing in the held load answers (it waits for a merge): it waits out `timeout_ms`."""
    body = b'{"operationId": "mergeCustomer", "timeout_ms": ' + str(timeout_ms).encode() + b"}"
    return raw_request(base_url, "POST", "/__admin/requests/wait", {"Content-Type": "application/json"}, body)


def raw_request(base_url: str, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """One complete HTTP/1.1 request as bytes (Host and Content-Length filled in), for the waiting-request templates."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {urlsplit(base_url).netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True)
class HeldLoad:
    """The shape of the load: how many connections of each kind, and for how long at most.

    `delayed_requests` and `long_polls` are complete raw requests, each sent on
    its own connection, all at once when every connection is open. With
    `resend_after`, each is sent again on its connection once answered, but
    no sooner than that many seconds after its previous send, until the
    release: a hold longer than the delay keeps every one waiting throughout,
    and a server that answers at once gets the same paced stream, not a flood.
    """

    idle_connections: int = 0  # one answered health check each, then silence on a kept-alive connection
    trickling_bodies: int = 0  # a load-customer-record head, then one body byte per trickle_interval, never complete
    delayed_requests: list[bytes] = field(default_factory=list)
    long_polls: list[bytes] = field(default_factory=list)
    hold_seconds: float = 30.0  # the load is released at the latest this long after hold() yields
    trickle_interval: float = 1.0
    open_concurrency: int = 200  # connections being opened at once: a fast ramp without a SYN flood
    open_timeout: float = 30.0  # one deadline for all three phases: every connection is open (or given up) within it
    answer_grace: float = 5.0  # on release, how long unanswered waiting requests may still be answered
    settle_seconds: float = 0.5  # between everything sent and the yield: the server takes up the held work
    resend_after: float | None = None  # seconds: send each waiting request again once answered (None: once only)

    @classmethod
    def full(cls, delayed: RequestTemplate | None = None, long_poll: RequestTemplate | None = None) -> HeldLoad:
        """The issue's shape: 2000 idle, 100 trickling, 200 delayed, 50 long polls, held 30 s."""
        return cls(2000, 100, repeat(delayed, 200), repeat(long_poll, 50), hold_seconds=30.0)

    @classmethod
    def light(cls, delayed: RequestTemplate | None = None, long_poll: RequestTemplate | None = None) -> HeldLoad:
        """A CI-sized shape: 300 idle, 20 trickling, 20 delayed, 10 long polls, held 8 s."""
        return cls(300, 20, repeat(delayed, 20), repeat(long_poll, 10), hold_seconds=8.0, open_timeout=10.0)

    @property
    def connections(self) -> int:
        return self.idle_connections + self.trickling_bodies + len(self.delayed_requests) + len(self.long_polls)


@dataclass
class KindReport:
    """What happened to the connections of one kind.

    `answered`/`statuses`/`elapsed`: for idle connections their health check,
    for trickling bodies an answer the server gave before the body was
    complete, for waiting requests their answer (elapsed from the send).
    `closed_early`: the server ended the connection (answered, closed, reset)
    before the load was released. `sent`: waiting requests sent (more than
    `established` when they are resent).
    """

    wanted: int = 0
    established: int = 0
    sent: int = 0
    closed_early: int = 0
    closed_after: list[float] = field(default_factory=list)  # seconds from established to the server's end
    answered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    elapsed: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def elapsed_min(self) -> float:
        return min(self.elapsed, default=math.nan)


@dataclass
class HeldReport:
    """Filled by the load's thread while it runs; final once `hold()` has exited."""

    idle: KindReport
    trickling: KindReport
    delayed: KindReport
    long_polls: KindReport
    open_seconds: float = math.nan  # from the start to every connection open (or given up)
    held_seconds: float = math.nan  # from the yield to the release
    released_by: str = ""  # "exit" (the with-block ended) or "hold_seconds"
    errors: Counter[str] = field(default_factory=Counter)  # the harness's own troubles

    @classmethod
    def of(cls, shape: HeldLoad) -> HeldReport:
        counts = (shape.idle_connections, shape.trickling_bodies, len(shape.delayed_requests), len(shape.long_polls))
        idle, trickling, delayed, long_polls = (KindReport(wanted=count) for count in counts)
        return cls(idle, trickling, delayed, long_polls)

    def kinds(self) -> dict[str, KindReport]:
        return {"idle": self.idle, "trickling": self.trickling, "delayed": self.delayed, "long polls": self.long_polls}

    @property
    def all_established(self) -> bool:
        return all(kind.established == kind.wanted for kind in self.kinds().values())


def describe(report: HeldReport) -> str:
    """One line for a log or an assertion message."""
    parts = []
    for name, kind in report.kinds().items():
        if not kind.wanted:
            continue
        text = f"{name} {kind.established}/{kind.wanted}"
        if kind.closed_early:
            after = f"after >= {min(kind.closed_after):.1f} s, median {statistics.median(kind.closed_after):.1f} s"
            text += f" ({kind.closed_early} ended by the server, {after})"
        if name in ("delayed", "long polls") or (name == "trickling" and kind.answered):
            statuses = ",".join(f"{status}:{count}" for status, count in sorted(kind.statuses.items()))
            text += f" answered {kind.answered}/{kind.sent or kind.established} [{statuses}]"
            if kind.elapsed:
                text += f" in {kind.elapsed_min:.2f}-{max(kind.elapsed):.2f} s"
        if kind.errors:
            text += " errors " + ",".join(f"{why}:{count}" for why, count in kind.errors.most_common())
        parts.append(text)
    harness = f"; harness errors {dict(report.errors)}" if report.errors else ""
    return (
        f"held: {'; '.join(parts) or 'nothing'}; opened in {report.open_seconds:.1f} s, "
        f"held {report.held_seconds:.1f} s (released by {report.released_by or '-'}){harness}"
    )
