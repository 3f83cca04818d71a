"""FIDELITY.md is the index of the spec's vendor facts and decisions: every row names tests that exist."""

from __future__ import annotations

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]
TEST_FILE = re.compile(r"`((?:[a-z0-9_]+/)+test_[a-z0-9_]+\.py)(?:::([A-Za-z0-9_]+))?`")
MORE_IN_FILE = re.compile(r"`::([A-Za-z0-9_]+)`")


def table_rows() -> list[str]:
    text = (REPO / "FIDELITY.md").read_text()
    return [
        line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| #") and not line.startswith("| decision")
    ]


def named_tests(row: str) -> list[tuple[str, str | None]]:
    """(test file, test function or None) for every test the row names; `::name` continues the file before it."""
    named, current = [], None
    for token in re.finditer(rf"{TEST_FILE.pattern}|{MORE_IN_FILE.pattern}", row):
        if token.group(1):
            current = token.group(1)
            named.append((current, token.group(2)))
        else:
            assert current is not None, f"`::{token.group(3)}` with no test file before it: {row}"
            named.append((current, token.group(3)))
    return named


def test_every_row_names_a_test():
    rows = table_rows()
    assert len(rows) >= 40
    bare = [row[:80] for row in rows if not named_tests(row)]
    assert not bare, bare


def test_every_named_test_exists():
    missing = []
    for row in table_rows():
        for path, function in named_tests(row):
            file = REPO / "tests" / path
            if not file.is_file():
                missing.append(path)
            elif function and not re.search(rf"^(async )?def {function}\(|^class {function}\b", file.read_text(), re.M):
                missing.append(f"{path}::{function}")
    assert not missing, missing


def test_no_row_is_left_to_fill():
    text = (REPO / "FIDELITY.md").read_text()
    assert not re.search(r"^[A-Z_]{6,}$", text, re.M), "a placeholder is left in FIDELITY.md"
