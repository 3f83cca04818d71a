"""Two trees of mockserver in one run, a change's before and after: `python -m benchmarks.trees OLD NEW [ROUNDS]`.

Each round, the trees in alternating order: `mockserver serve` from the tree on a free port (granian), wrk
-t2 -c16 -d8s on moveCustomer (two groups in turn: each request a real move, or a 409 when another
connection's move came first), the same on `--store redis://` (a redis-server started here), and the
in-process cost of a move (the tree's ASGI app awaited on one uvloop loop, no socket). Prints every round and
the medians' ratios. Needs wrk and redis-server; each tree runs from its folder with this Python's packages.
"""

from __future__ import annotations

import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MOVES = """
local n = 0
request = function()
  n = n + 1
  local group = (n % 2 == 0) and "vip" or "default"
  return wrk.format("PUT", "/cdm/client/demo/customer/BAK-11984-007/move/" .. group, {["xx-relay-api-key"] = "demo-key"})
end
"""
# Run inside a tree: its own app (mock.py's create_mock, or the older create_app with its extensions).
IN_PROCESS = """
import time, uvloop
from mockserver.settings import Settings
try:
    from mockserver.mock import create_mock
    asgi = create_mock(Settings()).asgi()
except ImportError:
    from mockserver.http.app import create_app
    from mockserver.http.asgi import AsgiApp
    asgi = AsgiApp(create_app(Settings()).extensions["mockserver"]["front"])
PATHS = ["/cdm/client/demo/customer/BAK-11984-007/move/vip", "/cdm/client/demo/customer/BAK-11984-007/move/default"]
statuses = []
async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}
async def send(message):
    if message["type"] == "http.response.start":
        statuses.append(message["status"])
async def moves(n):
    started = time.perf_counter()
    for i in range(n):
        path = PATHS[i % 2]
        scope = {"type": "http", "http_version": "1.1", "method": "PUT", "scheme": "http", "server": ("127.0.0.1", 1),
                 "client": ("127.0.0.1", 2), "root_path": "", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "headers": [(b"xx-relay-api-key", b"demo-key")]}
        await asgi(scope, receive, send)
    return (time.perf_counter() - started) / n * 1e6
print(min(uvloop.run(moves(4000)) for _ in range(5)))
assert set(statuses) == {200}, set(statuses)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(tree: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": tree, "MOCKSERVER_FIXTURE_CACHE": "off"}


def serve(tree: str, options: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [sys.executable, "-m", "mockserver", "serve", "--port", str(port), *options]
    process = subprocess.Popen(command, cwd=tree, env=environment(tree), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return process, port


def wrk(port: int, script: pathlib.Path) -> tuple[float, float]:
    """Requests a second and p99 in ms."""
    command = ["wrk", "-t2", "-c16", "-d8s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"]
    lines = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
    rps = float(next(line for line in lines if line.startswith("Requests/sec")).split()[1])
    p99 = next(line for line in lines if line.strip().startswith("99%")).split()[1]
    scale = {"us": 0.001, "ms": 1.0}.get(p99[-2:], 1000.0)
    return rps, float(p99.rstrip("usm")) * scale


def measured(tree: str, script: pathlib.Path, redis_url: str, namespace: str) -> dict[str, float]:
    figures = {}
    for label, options in (("memory", []), ("redis", ["--store", redis_url, "--namespace", namespace])):
        process, port = serve(tree, options)
        try:
            figures[f"{label} req/s"], figures[f"{label} p99 ms"] = wrk(port, script)
        finally:
            process.terminate()
            process.wait()
    done = subprocess.run([sys.executable, "-c", IN_PROCESS], cwd=tree, env=environment(tree), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    figures["in-process µs"] = float(done.stdout.split()[-1])
    return figures


def main(old: str, new: str, rounds: int) -> None:
    trees = {"before": os.path.abspath(old), "after": os.path.abspath(new)}
    script = pathlib.Path(tempfile.mkdtemp()) / "moves.lua"
    script.write_text(MOVES)
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    try:
        for n in range(rounds):
            for name in trees if n % 2 == 0 else reversed(list(trees)):
                runs[name].append(measured(trees[name], script, f"redis://127.0.0.1:{redis_port}/0", f"trees-{n}-{name}"))
                print(name, n, {key: round(value, 2) for key, value in runs[name][-1].items()}, flush=True)
    finally:
        redis.terminate()
    medians = {name: {key: statistics.median(run[key] for run in found) for key in found[0]} for name, found in runs.items()}
    for key in medians["before"]:
        before, after = medians["before"][key], medians["after"][key]
        print(f"{key:>16}: {before:10.2f} -> {after:10.2f}  ({after / before:.2f}x)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
