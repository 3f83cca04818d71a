"""The registry of API families: which plug-ins a server runs, by the import path of their `Family`.

The built-in families are Relay's and eGain's; a server may run others (a test's own family, say) by
naming them in `Settings.families` as `package.module:ATTRIBUTE`. Everything generic iterates what the
families declare (mockserver/family.py); the contract is checked against them at start, so an operation
whose tag names no family, or an operation its family has no handler for, stops the start.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence

from mockserver.family import Family
from mockserver.state.section import FixtureError, Section

BUILT_IN = ("mockserver.relay.api:FAMILY", "mockserver.egain.api:FAMILY")
RESERVED = frozenset({"admin", "default"})  # the admin API's family, and the tag of an untagged operation


def load(paths: Iterable[str] = BUILT_IN) -> list[Family]:
    """The families at `paths`, in order; a path that names no Family, or a name used twice, is a FixtureError."""
    found: list[Family] = []
    for path in paths:
        module_name, _, attribute = path.partition(":")
        try:
            family = getattr(importlib.import_module(module_name), attribute or "FAMILY")
        except (ImportError, AttributeError) as exc:
            raise FixtureError(f"family {path}: cannot be imported ({exc})") from exc
        if not isinstance(family, Family):
            raise FixtureError(f"family {path}: is not a mockserver.family.Family")
        if family.name in RESERVED or family.name in (f.name for f in found):
            raise FixtureError(f"family {path}: the name {family.name!r} is reserved or used by another family")
        if family.section is not None and family.section.name != family.name:
            raise FixtureError(f"family {path}: its section is named {family.section.name!r}, not {family.name!r}")
        found.append(family)
    return found


def sections(families: Sequence[Family]) -> list[Section]:
    """The families' parts of the fixture file and of the state, in registry order."""
    return [family.section for family in families if family.section is not None]


def credentials(families: Sequence[Family]) -> dict[str, bool]:
    """Every credential header of the families (lower case) -> whether it carries a bearer token."""
    return {credential.header: credential.bearer for family in families for credential in family.credentials}


def built_in_sections() -> list[Section]:
    """The built-in families' sections (tools and tests that read fixture files without a server)."""
    return sections(load())
