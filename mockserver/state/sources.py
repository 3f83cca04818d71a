"""Ids, time and randomness: one seedable source of each per state (moto's lesson).

Every value a command invents comes from the `Sources` of the state it runs
on, so two sessions never share a counter, and a seeded run (fixed start
time, seeded random) gives the same ids, timestamps and choices every time.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def format_ms(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as eGain writes `lastModified`."""
    return moment.astimezone(UTC).strftime(FORMAT)[:-3] + "Z"


def parse_ms(text: str) -> datetime:
    return datetime.strptime(text, FORMAT[:-3] + ".%fZ").replace(tzinfo=UTC)


_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")


def instant(text: str) -> tuple[int, str]:
    """An RFC 3339 date-time as (whole seconds since the epoch, fraction digits): equal for the same instant.

    `2021-10-25T11:29:58.000Z`, `2021-10-25T11:29:58+00:00` and
    `2021-10-25T13:29:58.0000001+02:00` differ as strings; compared this way
    the first two are equal and the third is not (datetime would round its
    seventh digit away). The text is already checked as `format: date-time`.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    day, clock, fraction, offset = match.groups()
    offset = "+00:00" if offset in "Zz" else offset
    seconds = datetime.fromisoformat(f"{day}T{clock}{offset}").timestamp()
    return int(seconds), (fraction or "").rstrip("0")


class Clock:
    """Millisecond timestamps that always move forward, even within one millisecond."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._now = now
        self._last = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def stamp_after(self, previous: str | None = None) -> str:
        """A new timestamp later than every one given before and than `previous`."""
        with self._lock:
            now = self._now()
            moment = now.replace(microsecond=now.microsecond // 1000 * 1000)
            floor = self._last if previous is None else max(self._last, parse_ms(previous))
            if moment <= floor:
                moment = floor + timedelta(milliseconds=1)
            self._last = moment
            return format_ms(moment)


class IdSequence:
    """Numeric string ids for new records, above every id the fixtures used."""

    def __init__(self, start: int):
        self._next = start
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            value = self._next
            self._next += 1
            return str(value)

    def peek(self) -> int:
        """The id `next` would give: kept in the state file and its log, so a restart goes on where the server was."""
        return self._next

    def restart_at(self, next_id: int) -> None:
        """Give `next_id` next (restoring a saved or logged state exactly as it was)."""
        with self._lock:
            self._next = next_id


class Sources:
    """Where one state's new ids, timestamps and random choices come from.

    `now` is the wall clock unless given; `seed` makes `random` reproducible
    (None seeds from the operating system).
    """

    def __init__(self, first_id: int, seed: int | str | None = None, now: Callable[[], datetime] | None = None):
        self.clock = Clock(now) if now is not None else Clock()
        self.ids = IdSequence(first_id)
        self.random = random.Random(seed)
