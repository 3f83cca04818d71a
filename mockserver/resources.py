"""Where the bundled spec and default fixtures live, in a wheel or a checkout.

A wheel carries copies under `mockserver/bundled/` (see pyproject.toml); a
checkout or editable install reads the top-level `spec/`, `fixtures/` and
`schemathesis.toml`.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_BUNDLED = _PACKAGE / "bundled"
_CHECKOUT = _PACKAGE.parent


def _find(*parts: str) -> Path:
    for base in (_BUNDLED, _CHECKOUT):
        candidate = base.joinpath(*parts)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{'/'.join(parts)} is missing from the installed package and the checkout")


def spec_path() -> Path:
    return _find("spec", "openapi.yaml")


def default_fixtures_path() -> Path:
    return _find("fixtures", "default.yaml")


def admin_spec_path() -> Path:
    return _find("spec", "admin.yaml")


def schemathesis_config_path() -> Path:
    """The contract's schemathesis settings (`mockserver contract` runs with them; so do tests/contract)."""
    return _find("schemathesis.toml")


def default_scenarios_path() -> Path:
    """The bundled scenarios folder (found by one of its files)."""
    return _find("fixtures", "scenarios", "relay-outage.yaml").parent
