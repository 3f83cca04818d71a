"""The spec itself: valid OpenAPI 3.1, examples that validate, documentation on every operation."""

import pathlib
import re

import pytest
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate

from mockserver.contract import xmlcodec
from mockserver.contract.spec import dereference, load_document
from mockserver.egain.api import FAMILY as EGAIN
from mockserver.relay.api import FAMILY as RELAY

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCUMENT = load_document()
RESOLVED = dereference(DOCUMENT)
OPERATIONS = [
    (path, method, op)
    for path, item in RESOLVED["paths"].items()
    for method, op in item.items()
    if method in ("get", "put", "post", "delete", "patch")
]
MEDIA = [
    (op["operationId"], status, mimetype, media)
    for _, _, op in OPERATIONS
    for status, response in op["responses"].items()
    for mimetype, media in response.get("content", {}).items()
] + [
    (op["operationId"], "request", mimetype, media)
    for _, _, op in OPERATIONS
    for mimetype, media in op.get("requestBody", {}).get("content", {}).items()
]


def ids(entries):
    return [f"{e[0]}-{e[1]}-{e[2]}" for e in entries]


def test_spec_is_valid_openapi_31():
    assert DOCUMENT["openapi"].startswith("3.1")
    validate(DOCUMENT)


@pytest.mark.parametrize("path, method, op", OPERATIONS, ids=[o[2]["operationId"] for o in OPERATIONS])
def test_every_operation_is_documented(path, method, op):
    assert op.get("summary") and op.get("description") and op.get("operationId")
    assert op.get("security"), "every vendor operation is authenticated"
    for status, response in op["responses"].items():
        assert response.get("description"), status
        if status.startswith(("4", "5")):
            assert response.get("content"), f"{status} must document its error body"
    assert "400" in op["responses"] and "500" in op["responses"]


@pytest.mark.parametrize("operation_id, status, mimetype, media", MEDIA, ids=ids(MEDIA))
def test_every_example_validates_against_its_schema(operation_id, status, mimetype, media):
    assert "example" in media or "examples" in media, "every body has an example"
    values = [media["example"]] if "example" in media else [example["value"] for example in media["examples"].values()]
    for value in values:
        if mimetype == "application/xml":
            value = xmlcodec.decode(value.encode(), media["schema"])
        OAS31Validator(media["schema"], format_checker=oas31_format_checker).validate(value)


@pytest.mark.parametrize(
    "operation_id, status, mimetype, media",
    [m for m in MEDIA if m[2] == "application/xml"],
    ids=ids([m for m in MEDIA if m[2] == "application/xml"]),
)
def test_xml_examples_say_what_the_json_examples_say(operation_id, status, mimetype, media):
    op = next(o for _, _, o in OPERATIONS if o["operationId"] == operation_id)
    container = op["requestBody"] if status == "request" else op["responses"][status]
    json_media = container["content"]["application/json"]
    json_examples = (
        {"default": json_media["example"]} if "example" in json_media else {k: v["value"] for k, v in json_media["examples"].items()}
    )
    xml_examples = {"default": media["example"]} if "example" in media else {k: v["value"] for k, v in media["examples"].items()}
    assert list(xml_examples) == list(json_examples), "the same example names in JSON and XML"
    for name, json_example in json_examples.items():
        assert xmlcodec.decode(xml_examples[name].encode(), media["schema"]) == json_example, name
        assert xmlcodec.decode(xmlcodec.encode(json_example, media["schema"]), media["schema"]) == json_example, name


def test_every_operation_id_names_a_handler():
    handlers = {**RELAY.handlers, **EGAIN.handlers}
    assert sorted(op["operationId"] for _, _, op in OPERATIONS) == sorted(handlers)
    for operation_id, handler in handlers.items():
        assert handler.__name__ == operation_id


def test_links_point_at_real_operations():
    operation_ids = {op["operationId"] for _, _, op in OPERATIONS}
    links = [link for _, _, op in OPERATIONS for r in op["responses"].values() for link in r.get("links", {}).values()]
    assert len(links) >= 6
    assert all(link["operationId"] in operation_ids for link in links)


def test_the_seed_400_101_example_is_verbatim():
    merge = next(op for _, _, op in OPERATIONS if op["operationId"] == "mergeCustomer")
    assert merge["responses"]["400"]["content"]["application/json"]["examples"]["seed"]["value"] == {
        "code": "400-101",
        "developerMessage": "Unsupported query parameter(s) supplied: '<query_parameter>'.",
    }


def test_every_egain_400_code_used_by_the_code_is_listed_in_the_spec():
    import pathlib
    import re

    listed = set(re.findall(r"`(400-\d{3})`", RESOLVED["components"]["schemas"]["EgainError"]["description"]))
    package = pathlib.Path(__file__).resolve().parents[2] / "mockserver"
    source = "".join(p.read_text() for p in package.rglob("*.py"))
    used = set(re.findall(r'"(400-\d{3})"', source))
    assert used <= listed, used - listed


def test_every_format_the_spec_uses_is_judged_as_openapi_core_judges_it():
    from openapi_schema_validator import OAS30ReadValidator

    from mockserver.contract.compiled import FORMAT_CHECKER

    used = set(re.findall(r"format: ([\w-]+)", (REPO / "spec" / "openapi.yaml").read_text()))
    assert used == {"date", "date-time"}
    for name in used:
        assert FORMAT_CHECKER.checkers[name] == OAS30ReadValidator.FORMAT_CHECKER.checkers[name], name
