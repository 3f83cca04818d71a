"""Where the start goes with a large fixture file: each stage of `Fixtures.load` and `build`, timed alone.

    python -m benchmarks.load_stages FIXTURE [FIXTURE...]   (e.g. files of benchmarks/fixturegen.py)

Stages run in the order a start runs them, each once, in this process (no
server): read, cache key, parse, file-structure check, record checks (the
fast pass, and the per-record walk a broken file needs), freezing, the cache
entry written and read back, and building a state (a start builds one for
the default session and one for each bundled scenario's check).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mockserver.contract.compiled import Contract, SchemaCheck
from mockserver.contract.spec import load_document
from mockserver.families import built_in_sections
from mockserver.relay import section as relay_section
from mockserver.state import fixture_cache, fixtures, frozen

SECTIONS = built_in_sections()


def _timed(label: str, step: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = step()
    print(f"  {label:<44} {time.perf_counter() - started:7.2f} s", flush=True)
    return result


def stages(path: Path) -> None:
    print(f"{path} ({path.stat().st_size / 1e6:.0f} MB)")
    schemas = _timed("spec compiled", lambda: Contract(load_document()).schemas)
    raw = _timed("read", path.read_bytes)
    _timed("cache key (sha256 of the file and checkers)", lambda: fixture_cache.key(raw, schemas, SECTIONS))
    data = _timed("parse (" + ("JSON" if path.suffix == ".json" else "YAML, collector paused") + ")", lambda: fixtures._parse(raw, path))
    record_check = SchemaCheck(schemas["RelayCustomerRecord"])
    clients = data["relay"]["clients"]
    array_check = SchemaCheck({"type": "array", "items": record_check.schema})
    _timed("record checks, fast pass (all rules)", lambda: [relay_section._customers_pass(c, array_check) for c in clients])
    _timed("record checks, walk (what a broken file costs)", lambda: [_walk(c, record_check) for c in clients])
    _timed("  of which one schema call a record", lambda: [record_check.valid(r) for c in clients for r in c.get("customers", [])])
    _timed("freeze (marshal, chunks of 2000)", lambda: [frozen.freeze(c.get("customers", []), "ccid") for c in clients])
    loaded = _timed("Fixtures(data) = checks + freeze", lambda: fixtures.Fixtures(data, str(path), schemas, SECTIONS))
    with tempfile.TemporaryDirectory() as folder:
        cached = _timed(
            "Fixtures.load, cache miss (parse, check, write)", lambda: fixtures.Fixtures.load(path, schemas, SECTIONS, Path(folder))
        )
        _timed("Fixtures.load, cache hit", lambda: fixtures.Fixtures.load(path, schemas, SECTIONS, Path(folder)))
    del cached
    state = _timed("build a fresh state (inline)", loaded._fresh)
    _timed("drop a state at once", lambda: state.__dict__.clear())


def _walk(client: dict, record_check: SchemaCheck) -> None:
    try:
        relay_section._explain_customers(client, "x", record_check)
    except fixtures.FixtureError:
        pass


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        stages(Path(argument))
