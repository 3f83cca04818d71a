"""Load generation: the scenarios, driven by wrk (Lua scripts) or, without wrk, a bounded Python client.

A scenario says, for load-generator thread `tid` and its `n`-th request, which
request to send. The same definition is rendered as a wrk Lua script and used
by the Python fallback client, so both send the same stream. Every run is
bounded in time (wrk `-d`, the Python client's deadline and join timeout, and
a hard subprocess timeout).
"""

from __future__ import annotations

import http.client
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mockserver.testing.fixturegen import MERGE_LAST_MODIFIED, SOURCE_BASE, TARGET_BASE, move_ccid, relay_ccid

RELAY_KEY = {"xx-relay-api-key": "demo-key"}
READ_TOKEN = {"Authorization": "Bearer demo-readonly-token"}
WRITE_TOKEN = {"Authorization": "Bearer demo-user-token"}
GROUPS = ("product-group-test-2", "default")  # a move customer starts in `default`
WRK = "/usr/bin/wrk"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass(frozen=True)
class Scenario:
    """`python(tid, n, threads)` builds a request; `lua_request` is the same as a wrk request() body."""

    name: str
    method: str  # the baseline run with the same method is the reference
    python: Callable[[int, int, int], Request]
    lua_request: str
    lua_globals: str = ""


@dataclass
class LoadResult:
    scenario: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int] = field(default_factory=dict)
    socket_errors: int = 0
    client: str = "wrk"
    other_cpu: float | None = None  # cores busy with processes other than the server, the load generator and the runner

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    def status_mix(self) -> str:
        return " ".join(f"{status}:{count}" for status, count in sorted(self.statuses.items()))


def _lua_headers(headers: dict[str, str]) -> str:
    return "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()) + "}"


# ---------------------------------------------------------------- scenarios


def move_scenario(customers: int, first: int = 0) -> Scenario:
    """The load threads move `customers` customers (from MOV-`first` on) back and forth, each thread its own
    slice, round robin. Load generators run side by side take disjoint ranges (`first`).

    A customer comes round again only after `customers / threads` other requests
    of the same thread, far more than the thread's connections in flight, so
    moves do not race: every answer should be a 200 (the status mix shows it).
    """

    def python(tid: int, n: int, threads: int) -> Request:
        per_thread = customers // threads
        i, lap = n % per_thread, n // per_thread
        return Request("PUT", f"/cdm/client/demo/customer/{move_ccid(first + tid * per_thread + i)}/move/{GROUPS[lap % 2]}", RELAY_KEY)

    lua = f"""
  local per_thread = math.floor({customers} / threads)
  local i = {first} + tid * per_thread + n % per_thread
  local lap = math.floor(n / per_thread)
  local group = (lap % 2 == 0) and "{GROUPS[0]}" or "{GROUPS[1]}"
  return wrk.format("PUT", string.format("/cdm/client/demo/customer/MOV-%05d/move/%s", i, group), {_lua_headers(RELAY_KEY)})
"""
    return Scenario("moveCustomer", "PUT", python, lua)


def move_one_ccid_scenario() -> Scenario:
    """BAK-11984-007 alternately to each group by every thread: concurrent moves race, so expect 409s."""

    def python(tid: int, n: int, threads: int) -> Request:
        return Request("PUT", f"/cdm/client/demo/customer/BAK-11984-007/move/{GROUPS[n % 2]}", RELAY_KEY)

    lua = f"""
  local group = (n % 2 == 0) and "{GROUPS[0]}" or "{GROUPS[1]}"
  return wrk.format("PUT", "/cdm/client/demo/customer/BAK-11984-007/move/" .. group, {_lua_headers(RELAY_KEY)})
"""
    return Scenario("moveCustomer 1 ccid", "PUT", python, lua)


def retrieve_scenario(ccid: str = "BAK-11984-007") -> Scenario:
    def python(tid: int, n: int, threads: int) -> Request:
        return Request("GET", f"/cdm/client/demo/customer/{ccid}", RELAY_KEY)

    lua = f'  return wrk.format("GET", "/cdm/client/demo/customer/{ccid}", {_lua_headers(RELAY_KEY)})\n'
    return Scenario("retrieveCustomer", "GET", python, lua)


def retrieve_spread_scenario(customers: int) -> Scenario:
    """retrieveCustomer over all `customers` generated ccids (a fixed pseudo-random walk), for O(1) checks."""
    stride = 7919  # prime, so (n * stride) mod customers visits every ccid

    def python(tid: int, n: int, threads: int) -> Request:
        i = (n * threads + tid) * stride % customers
        return Request("GET", f"/cdm/client/demo/customer/{relay_ccid(i)}", RELAY_KEY)

    lua = f"""
  local i = ((n * threads + tid) * {stride}) % {customers}
  return wrk.format("GET", string.format("/cdm/client/demo/customer/BEN-%07d", i), {_lua_headers(RELAY_KEY)})
"""
    return Scenario(f"retrieveCustomer over {customers:,}", "GET", python, lua)


def get_by_ids_scenario() -> Scenario:
    def python(tid: int, n: int, threads: int) -> Request:
        return Request("GET", "/core/customermgr/v3/customer/1005,1010", READ_TOKEN)

    lua = f'  return wrk.format("GET", "/core/customermgr/v3/customer/1005,1010", {_lua_headers(READ_TOKEN)})\n'
    return Scenario("getCustomersByIds", "GET", python, lua)


def merge_body(pair: int) -> bytes:
    return (
        f'{{"sourceCustomer":{{"id":"{SOURCE_BASE + pair}"}},"targetCustomer":{{"id":"{TARGET_BASE + pair}",'
        f'"lastModified":"{MERGE_LAST_MODIFIED}","contacts":{{"contact":[{{"firstName":"John"}}]}}}}}}'
    ).encode()


def merge_scenario() -> Scenario:
    """A stream of fresh sources: request n of thread tid merges pair n*threads+tid (see fixturegen)."""
    headers = {**WRITE_TOKEN, "Content-Type": "application/json"}

    def python(tid: int, n: int, threads: int) -> Request:
        return Request("PUT", "/core/customermgr/v3/customer/merge", headers, merge_body(n * threads + tid))

    template = merge_body(0).decode().replace(str(SOURCE_BASE), "%d", 1).replace(str(TARGET_BASE), "%d", 1).replace('"', '\\"')
    lua = f"""
  local pair = n * threads + tid
  local body = string.format("{template}", {SOURCE_BASE} + pair, {TARGET_BASE} + pair)
  return wrk.format("PUT", "/core/customermgr/v3/customer/merge", {_lua_headers(headers)}, body)
"""
    return Scenario("mergeCustomer", "PUT", python, lua)


# ---------------------------------------------------------------- wrk

_LUA = """
-- generated by benchmarks/load.py: one scenario, with a status count per thread
local counter = 0
local all_threads = {{}}

function setup(thread)
  thread:set("tid", counter)
  thread:set("threads", {threads})
  counter = counter + 1
  table.insert(all_threads, thread)
end

function init(args)
  -- wrk calls request() once on its first thread, right after init(), to check the
  -- script, and never sends that request: start that thread at -1 so the stream
  -- actually sent starts at 0 on every thread (else moveCustomer shows one 409)
  n = (tid == 0) and -1 or 0
  counts = {{}}
end

local function build()
{body}end

function request()
  local r = build()
  n = n + 1
  return r
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d socket_errors=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout))
  for _, thread in ipairs(all_threads) do
    for status, count in pairs(thread:get("counts")) do
      io.write(string.format("BENCH_STATUS %d %d\\n", status, count))
    end
  end
end
"""


def have_wrk() -> bool:
    return Path(WRK).is_file() or shutil.which("wrk") is not None


def run_wrk(scenario: Scenario, port: int, seconds: float, threads: int, connections: int, workdir: Path) -> LoadResult:
    script = workdir / f"{re.sub(r'[^A-Za-z0-9]+', '_', scenario.name)}.lua"
    script.write_text(_LUA.format(threads=threads, body=scenario.lua_request), encoding="utf-8")
    wrk = WRK if Path(WRK).is_file() else shutil.which("wrk")
    duration = max(1, round(seconds))
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    match = re.search(r"BENCH requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) socket_errors=(\d+)", done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    requests, duration_us, p50, p99, socket_errors = (int(g) for g in match.groups())
    statuses: dict[int, int] = {}
    for status, count in re.findall(r"BENCH_STATUS (\d+) (\d+)", done.stdout):
        statuses[int(status)] = statuses.get(int(status), 0) + int(count)
    return LoadResult(scenario.name, requests, duration_us / 1e6, p50 / 1000, p99 / 1000, statuses, socket_errors, "wrk")


# ---------------------------------------------------------------- Python fallback


def run_python(scenario: Scenario, port: int, seconds: float, connections: int) -> LoadResult:
    """`connections` threads, each with one keep-alive connection, until the deadline (GIL-bound: a floor, not a peer of wrk)."""
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    statuses: list[dict[int, int]] = [{} for _ in range(connections)]
    errors = [0] * connections

    def worker(tid: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        n = 0
        while time.perf_counter() < deadline:
            req = scenario.python(tid, n, connections)
            n += 1
            start = time.perf_counter()
            try:
                conn.request(req.method, req.path, body=req.body, headers=req.headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors[tid] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                continue
            latencies[tid].append(time.perf_counter() - start)
            statuses[tid][response.status] = statuses[tid].get(response.status, 0) + 1
        conn.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(tid,), daemon=True) for tid in range(connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=max(0.0, deadline - time.perf_counter()) + 10)
    elapsed = time.perf_counter() - started
    merged = sorted(x for per in latencies for x in per)
    mix: dict[int, int] = {}
    for per in statuses:
        for status, count in per.items():
            mix[status] = mix.get(status, 0) + count
    p50 = statistics.median(merged) * 1000 if merged else 0.0
    p99 = merged[min(len(merged) - 1, int(len(merged) * 0.99))] * 1000 if merged else 0.0
    return LoadResult(scenario.name, len(merged), elapsed, p50, p99, mix, sum(errors), "python")


def run_load(scenario: Scenario, port: int, seconds: float, threads: int, connections: int, workdir: Path, client: str) -> LoadResult:
    if client == "wrk":
        return run_wrk(scenario, port, seconds, threads, connections, workdir)
    return run_python(scenario, port, seconds, connections)
