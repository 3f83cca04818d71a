"""Where a request's time goes: the mockserver WSGI app called in-process (no network, no server), under cProfile.

    python -m benchmarks.profiling [--scenario moveCustomer] [--requests 5000] [--top 20]

Requests are the benchmark's own (benchmarks/load.py), built beforehand with
werkzeug's EnvironBuilder so building them is not profiled. Prints the time per
request without the profiler, a breakdown by stage (inclusive times of the
pipeline's stages, read from the profile), and the top entries by cumulative
time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from werkzeug.test import EnvironBuilder

from benchmarks import load
from mockserver.testing.fixturegen import write_fixture

WARMUP = 200
MOVE_CUSTOMERS = 64
SCENARIOS = {
    "moveCustomer": lambda: load.move_scenario(MOVE_CUSTOMERS),
    "retrieveCustomer": load.retrieve_scenario,
    "getCustomersByIds": load.get_by_ids_scenario,
    "mergeCustomer": load.merge_scenario,
}
# (label, file suffixes, functions; alternatives separated by |): inclusive times of the stages a request
# passes. A stage the code does not have (it changes: Flask may or may not be on the path) is left out.
STAGES = [
    ("whole WSGI call, body iterated and closed", "benchmarks/profiling.py", "_call"),
    ("  Flask wsgi_app", "flask/app.py", "wsgi_app"),
    ("    Flask request context push (incl. werkzeug URL matching)", "flask/ctx.py", "push"),
    ("      werkzeug URL map match", "werkzeug/routing/map.py", "match"),
    ("    Flask request context pop", "flask/ctx.py", "pop"),
    ("  mockserver WSGI middleware (ApiMiddleware)", "mockserver/wsgi.py", "__call__"),
    ("  mockserver's Flask hook/view `api`", "mockserver/app.py", "api"),
    ("    werkzeug Request(environ)", "werkzeug/wrappers/request.py", "__init__"),
    ("    read the request into RawRequest", "mockserver/app.py|mockserver/wsgi.py", "raw_request|_raw_request"),
    ("    Pipeline.handle", "mockserver/pipeline.py", "handle"),
    ("      routing (Contract.match)", "mockserver/contract/compiled.py", "match"),
    ("      authentication (family.authenticate, takes the store lock)", "/api.py", "authenticate"),
    ("      request validation (Operation.validate)", "mockserver/contract/compiled.py", "validate"),
    ("      handler: the operation's domain command under the store lock", "/api.py", "{operation}"),
    ("      response self-check (Operation.check_response)", "mockserver/contract/compiled.py", "check_response"),
    ("      rendering (render.wire)", "mockserver/render.py", "wire"),
    ("    send the answer (start_response and body)", "mockserver/wsgi.py", "_send"),
    ("    build a werkzeug/Flask Response", "werkzeug/wrappers/response.py", "__init__"),
]


def _environs(scenario: load.Scenario, start: int, count: int) -> list[dict]:
    environs = []
    for n in range(start, start + count):
        request = scenario.python(0, n, 1)
        builder = EnvironBuilder(method=request.method, path=request.path, headers=request.headers, data=request.body)
        environs.append(builder.get_environ())
    return environs


def _call(app, environ: dict, statuses: Counter) -> None:
    status_line: list[str] = []

    def start_response(status: str, headers: list, exc_info=None):
        status_line.append(status)

    body = app(environ, start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    statuses[int(status_line[0].split()[0])] += 1


def _inclusive(stats: pstats.Stats, suffix: str, function: str) -> tuple[float, int] | None:
    """Inclusive time and calls of `function` in a file ending with `suffix` (alternatives separated by |)."""
    names, suffixes = set(function.split("|")), tuple(suffix.split("|"))
    found = [(ct, nc) for (filename, _, name), (_, nc, _, ct, _) in stats.stats.items() if filename.endswith(suffixes) and name in names]
    if not found:
        return None
    return max(found)  # the outermost of same-named functions (e.g. Flask's two context `push`es) includes the others


def profile(scenario_name: str = "moveCustomer", requests: int = 5000, top: int = 20) -> str:
    from mockserver.http.app import create_app
    from mockserver.settings import Settings

    scenario = SCENARIOS[scenario_name]()
    out = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="mockserver-profile-") as tmp:
        pairs = 2 * requests + WARMUP if scenario_name == "mergeCustomer" else 0
        fixtures = write_fixture(Path(tmp) / "profile.yaml", move_customers=MOVE_CUSTOMERS, merge_pairs=pairs)
        app = create_app(Settings(fixtures=fixtures))
    warm = _environs(scenario, 0, WARMUP)
    timed = _environs(scenario, WARMUP, requests)
    profiled = _environs(scenario, WARMUP + requests, requests)
    statuses: Counter = Counter()
    for environ in warm:
        _call(app, environ, statuses)
    started = time.perf_counter()
    for environ in timed:
        _call(app, environ, statuses)
    plain_us = (time.perf_counter() - started) / requests * 1e6

    profiler = cProfile.Profile()
    profiler.enable()
    for environ in profiled:
        _call(app, environ, statuses)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=out)

    total = _inclusive(stats, *STAGES[0][1:])
    whole = total[0] if total else 0.0
    out.write(f"### In-process profile: {scenario_name}, {requests} requests through the WSGI app (no network)\n\n")
    out.write(f"Statuses over all {sum(statuses.values())} calls (warm-up, timed, profiled): {dict(sorted(statuses.items()))}\n\n")
    out.write(f"Without the profiler: {plain_us:.0f} µs per request in-process (= {1e6 / plain_us:,.0f} req/s on one core).\n")
    out.write(f"Under cProfile: {whole / requests * 1e6:.0f} µs per request (profiler overhead inflates small calls).\n\n")
    out.write("Stage breakdown (inclusive time under cProfile, per request, share of the whole WSGI call):\n\n")
    out.write("| stage | µs/request | share |\n|---|---:|---:|\n")
    for label, suffix, function in STAGES:
        found = _inclusive(stats, suffix, function.format(operation=scenario_name))
        if found is None:
            continue
        cumulative, _ = found
        share = cumulative / whole * 100 if whole else 0.0
        depth = (len(label) - len(label.lstrip())) // 2
        out.write(f"| {'· ' * depth}{label.strip()} | {cumulative / requests * 1e6:.0f} | {share:.0f}% |\n")
    for key, title in (("cumulative", "cumulative time"), ("tottime", "own time (tottime)")):
        buffer = io.StringIO()
        stats.stream = buffer
        stats.sort_stats(key).print_stats(top)
        out.write(f"\nTop {top} by {title}:\n\n```\n{_trim(buffer.getvalue())}```\n")
    return out.getvalue()


def _trim(text: str) -> str:
    """pstats output from the column header on, with site-packages paths shortened."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    kept = [line.rstrip() for line in lines[start:] if line.strip()]
    shortened = []
    for line in kept:
        stdlib = f"/lib/python{sys.version_info.major}.{sys.version_info.minor}/"
        for marker in ("/site-packages/", stdlib, str(Path(__file__).resolve().parent.parent) + "/"):
            if marker in line:
                head, _, tail = line.partition(marker)
                prefix = head.rsplit(" ", 1)[0] + " " if " " in head else ""
                line = prefix + tail
        shortened.append(line)
    return "\n".join(shortened) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="moveCustomer")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    print(profile(args.scenario, args.requests, args.top))


if __name__ == "__main__":
    main()
