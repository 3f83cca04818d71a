"""End-to-end tests: real server processes, started as users start them (mockserver.testing)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository
