"""How long requests wait while the server does something heavy (a reset, a compaction): a request loop beside it."""

from __future__ import annotations

import http.client
import math
import threading
import time
import urllib.error
import urllib.request

from benchmarks.load import GROUPS
from mockserver.testing.process import HOST

RELAY_KEY = {"xx-relay-api-key": "demo-key"}


class RequestLoop:
    """retrieveCustomer in a tight loop on one keep-alive connection, in a thread: each request's send time and latency."""

    def __init__(self, url: str):
        self.port = int(url.rsplit(":", 1)[1])
        self.samples: list[tuple[float, float]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=40)

    def _run(self) -> None:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        while not self._stop.is_set():
            sent = time.perf_counter()
            try:
                connection.request("GET", "/cdm/client/demo/customer/BAK-11984-007", headers=RELAY_KEY)
                response = connection.getresponse()
                response.read()
                self.errors += response.status != 200
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
                connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
            self.samples.append((sent, time.perf_counter() - sent))
        connection.close()

    def worst(self, start: float, end: float = math.inf) -> tuple[float, float]:
        """Max and p99 (ms) of the requests sent from `start` to `end`."""
        ordered = sorted(latency for sent, latency in self.samples if start <= sent < end)
        if not ordered:
            return math.nan, math.nan
        return ordered[-1] * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def change_something(url: str, ccid: str = "MOV-00000") -> int:
    """One moveCustomer that changes the state: to the first group, or (409: it is there already) to the other."""
    for group in GROUPS:
        request = urllib.request.Request(f"{url}/cdm/client/demo/customer/{ccid}/move/{group}", method="PUT", headers=RELAY_KEY)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            if error.code != 409:
                return error.code
    return 409
