"""The Acme family whole: its section (fixtures: a token and widgets), its one command, its error format.

Everything a family declares is here and nothing outside tests/family names it: the server runs it
with `Settings(families=(*BUILT_IN, "tests.family.acme.api:FAMILY"))`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mockserver.contract.compiled import JSON, Operation, RawRequest, SchemaCheck
from mockserver.contract.errors import RequestInvalid
from mockserver.errors import ApiError
from mockserver.family import Call, Credential, Family, Reply
from mockserver.state.changes import Write
from mockserver.state.section import Chunks, Collection, FixtureError, Section
from mockserver.state.sources import Sources

NAME = "acme"
TOKEN_HEADER = "x-acme-token"
WIDGETS = "widgets"


@dataclass
class AcmeState:
    tokens: frozenset[str]
    widgets: MutableMapping[str, dict]


class AcmeSection(Section):
    name = NAME
    record_schemas = ("AcmeWidget",)
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["tokens"],
        "properties": {
            "tokens": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            WIDGETS: {"type": "array", "items": {"type": "object"}},
        },
    }
    scenario_schema = {"type": "array", "items": {"type": "object"}}

    def check(self, data: dict, source: str, schemas: dict[str, dict]) -> None:
        widget_check = SchemaCheck(schemas["AcmeWidget"])
        for i, widget in enumerate(data.get(WIDGETS, [])):
            problem = widget_check.error(widget)
            if problem:
                raise FixtureError(f"{source}: acme.widgets[{i}]: {problem}")

    def head(self, data: dict) -> dict:
        return {"tokens": data.get("tokens", [])}

    def config(self, head: dict) -> frozenset[str]:
        return frozenset(head["tokens"])

    def records(self, data: dict) -> list[tuple[Collection, list[dict]]]:
        return [(Collection(WIDGETS, "widget_id"), data.get(WIDGETS, []))]

    def collections(self, state: AcmeState) -> list[Collection]:
        return [Collection(WIDGETS, "widget_id")]

    def build(self, config: frozenset[str], records: dict[str, Chunks], sources: Sources) -> AcmeState:
        widgets: dict[str, dict] = {}
        for chunk in records.get(WIDGETS, ()):
            widgets.update(chunk)
        return AcmeState(config, widgets)

    def mappings(self, state: AcmeState) -> dict[str, MutableMapping]:
        return {WIDGETS: state.widgets}

    def over(self, state: AcmeState, mappings: dict[str, MutableMapping], sources: Sources) -> AcmeState:
        return AcmeState(state.tokens, mappings[WIDGETS])

    def snapshot(self, state: AcmeState) -> dict:
        return {"tokens": sorted(state.tokens), WIDGETS: list(state.widgets.values())}

    def view(self, state: AcmeState, limit: int) -> tuple[Any, bool]:
        widgets = list(itertools.islice(state.widgets.values(), limit + 1))
        return {WIDGETS: [dict(w) for w in widgets[:limit]]}, len(widgets) > limit

    def patches(self, data: list[dict], state: AcmeState, at: str) -> list[tuple[str, str, dict, str]]:
        return [(WIDGETS, patch["widget_id"], patch, f"{at}[{j}]") for j, patch in enumerate(data)]


def paint(state: Any, widget_id: str, colour: str) -> dict:
    """Domain rule: an unknown widget is a 404, the colour it already has a 409; each paint adds a coat."""
    widgets = state[NAME].widgets
    widget = widgets.get(widget_id)
    if widget is None:
        raise ApiError(404, f"No widget {widget_id}.")
    if widget["colour"] == colour:
        raise ApiError(409, f"Widget {widget_id} is {colour} already.")
    widgets[widget_id] = painted = {**widget, "colour": colour, "coats": widget["coats"] + 1}
    return dict(painted)


_paint = Write(paint, lambda widget_id, colour: [(NAME, WIDGETS, widget_id)])


def paintWidget(call: Call) -> Reply:  # noqa: N802 - named after its operationId
    path = call.request.path
    return Reply(200, call.store.run(_paint, path["widget_id"], path["colour"]))


def authenticate(tokens: frozenset[str], operation: Operation, raw: RawRequest, path_values: dict[str, str]) -> None:
    if raw.headers.get(TOKEN_HEADER) not in tokens:
        raise ApiError(401, "Unknown Acme token.")


def error_body(error: ApiError, headers: Mapping[str, str] | None = None) -> dict:
    return {"error": error.message, "status": error.status}


def contract_error(invalid: RequestInvalid) -> ApiError:
    return ApiError(400, f"Bad request: {invalid.message}")


FAMILY = Family(
    name=NAME,
    authenticate=authenticate,
    negotiate=lambda raw: JSON,
    handlers={"paintWidget": paintWidget},
    error_body=error_body,
    contract_error=contract_error,
    section=AcmeSection(),
    spec=Path(__file__).with_name("openapi.yaml"),
    credentials=(Credential(TOKEN_HEADER),),
    demo_schemes={"acmeToken": "acme-demo"},
    demo_headers={TOKEN_HEADER: "acme-demo"},
    banner=("  Acme        {base}/acme/v1/widgets/...",),
)
