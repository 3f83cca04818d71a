"""The spec compiled once into routes and ready-built schema validators.

Stock openapi-core re-walks the spec and rebuilds its validators on every
call (about 5 ms a request here). This module does that walk once at start-up:
each operation gets its route regex, its parameters with a prebuilt
validator each, its body media types and its responses. Decisions are the
same as openapi-core's (the same OAS 3.1 validator class and format checker);
`tests/contract/test_differential.py` shows both agree on a generated corpus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
from jsonschema import FormatChecker

from mockserver.contract import xmlcodec
from mockserver.contract.errors import MethodNotAllowed, RequestInvalid, ResponseInvalid, RouteNotFound
from mockserver.contract.spec import dereference

JSON = "application/json"
XML = "application/xml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# The format checks openapi-core uses are jsonschema's own (plus OAS 3.0 extras
# such as int32 that this spec does not use); importing them from
# openapi-schema-validator would pull in pydantic (~100 ms at start-up).
# tests/contract/test_spec_quality.py checks every format the spec uses is judged alike.
FORMAT_CHECKER = FormatChecker()
# No documented body nests anywhere near this; deeper bodies are refused before
# any code (validation, copying, rendering) walks them recursively.
MAX_BODY_DEPTH = 32


# Format checks are openapi-core's own (see FORMAT_CHECKER): the Rust
# validator's built-in ones differ at the edges (it accepts year 0000, which
# Python's datetime refuses).
_FORMATS = {name: (lambda value, name=name: FORMAT_CHECKER.conforms(value, name)) for name in FORMAT_CHECKER.checkers}


class SchemaCheck:
    """One schema with its validator built once; answers None or a message naming the field.

    The validator is jsonschema-rs (Rust, about 0.2 µs a check here against
    about 14 µs for Python jsonschema). openapi-core, which uses Python
    jsonschema, stays the reference: the differential test shows both decide
    alike on a generated corpus.
    """

    def __init__(self, schema: dict):
        self.schema = schema
        self._validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True, formats=_FORMATS)

    def valid(self, value: Any) -> bool:
        """Yes or no, with no message built: the fast pass over many values, which `error` then explains."""
        try:
            return self._validator.is_valid(value)
        except (ValueError, RecursionError):
            return False

    def error(self, value: Any) -> str | None:
        try:
            if self._validator.is_valid(value):
                return None
            found = next(iter(self._validator.iter_errors(value)))
        except (ValueError, RecursionError):  # e.g. a value nested too deeply for the validator
            return "the value is nested too deeply or cannot be checked"
        where = ".".join(str(part) for part in found.instance_path)
        message = found.message
        if len(message) > 200:  # never echo a huge value back
            message = f"{message[:60]}… ({type(found.kind).__name__} check failed)"
        return f"{where}: {message}" if where else message


@dataclass(frozen=True)
class RawRequest:
    """A request as the contract sees it: no Flask, so tests and tools can build one."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    body_too_large: bool = False  # the body was refused unread (see Settings.max_body_bytes)

    @property
    def mimetype(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class ValidatedRequest:
    operation_id: str
    # Parameters by name, each as its schema's type (string, integer or boolean), defaults filled in.
    path: dict[str, Any]
    query: dict[str, Any]
    headers: dict[str, Any]
    body: Any = None
    media_type: str | None = None


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # path, query or header
    required: bool
    check: SchemaCheck
    default: Any
    type: str = "string"  # string, integer or boolean: what the text is read as before the check

    def describe(self) -> str:
        return f"{self.location} parameter '{self.name}'"


@dataclass
class Operation:
    operation_id: str
    family: str
    method: str
    template: str
    parameters: list[Parameter]
    body_required: bool
    body_media: dict[str, SchemaCheck]
    responses: dict[str, dict[str, SchemaCheck]]
    examples: dict[tuple[str, str], dict[str, Any]]  # (status, media type) -> example name -> value ("default" if unnamed)
    query_names: frozenset[str] = frozenset()

    def validate(self, request: RawRequest, path_values: dict[str, str]) -> ValidatedRequest:
        """Check parameters and body in the order a client can best act on; raise RequestInvalid."""
        unknown = [name for name, _ in request.query if name not in self.query_names]
        if unknown:
            listed = ", ".join(f"'{name}'" for name in dict.fromkeys(unknown))
            raise RequestInvalid("unknown_query", f"Unsupported query parameter(s) supplied: {listed}.", "query")
        query = dict(request.query)
        found: dict[str, dict[str, Any]] = {"path": {}, "query": {}, "header": {}}
        for param in self.parameters:
            value = _lookup(param, path_values, query, request.headers)
            if value is None:
                if param.required:
                    raise RequestInvalid("parameter", f"{param.describe()} is required.", param.location, param.name, "it is required.")
                if param.default is not None:
                    found[param.location][param.name] = param.default
                continue
            typed = _typed(param.type, value)
            problem = param.check.error(typed) if typed is not None else f"'{_shown(value)}' is not {_ARTICLE[param.type]}"
            if problem:
                raise RequestInvalid("parameter", f"{param.describe()}: {problem}", param.location, param.name, problem)
            found[param.location][param.name] = typed
        body, media_type = self._decode_body(request)
        return ValidatedRequest(self.operation_id, found["path"], found["query"], found["header"], body, media_type)

    def _decode_body(self, request: RawRequest) -> tuple[Any, str | None]:
        if not self.body_media:
            return None, None
        if request.body_too_large:
            raise RequestInvalid("body_too_large", "The request body is too large.", "body")
        if not request.body:
            if self.body_required:
                raise RequestInvalid("body_missing", "The request body is required.", "body")
            return None, None
        mimetype = request.mimetype
        check = self.body_media.get(mimetype)
        if check is None:
            accepted = " or ".join(self.body_media)
            raise RequestInvalid(
                "content_type", f"Content-Type '{mimetype or '(none)'}' is not supported; send {accepted}.", "header", "Content-Type"
            )
        value = _decode(mimetype, request.body, check.schema)
        problem = check.error(value)
        if problem:
            raise RequestInvalid("body_schema", f"request body: {problem}", "body")
        return value, mimetype

    def check_response(self, status: int, mimetype: str | None, payload: Any) -> None:
        """Raise ResponseInvalid unless the spec documents this answer for this operation."""
        media = self.responses.get(str(status))
        if media is None:
            raise ResponseInvalid(f"{self.operation_id} does not document status {status}")
        if not media:
            if payload is not None:
                raise ResponseInvalid(f"{self.operation_id} {status} documents no body")
            return
        check = media.get(mimetype or "")
        if check is None:
            raise ResponseInvalid(f"{self.operation_id} {status} does not document content type {mimetype!r}")
        problem = check.error(payload)
        if problem:
            raise ResponseInvalid(f"{self.operation_id} {status} body breaks its schema: {problem}")

    def documents(self, status: int) -> bool:
        return str(status) in self.responses

    def media_type_for(self, status: int, wanted: str) -> str:
        """The negotiated media type if this status documents it, else the first it does (eGain's 406 is JSON only)."""
        media = self.responses.get(str(status)) or {}
        return wanted if wanted in media or not media else next(iter(media))

    def example_names(self, status: int) -> list[str]:
        media = self.responses.get(str(status)) or {}
        return list(self.examples.get((str(status), next(iter(media))), {})) if media else []

    def example(self, status: int, mimetype: str, name: str | None = None) -> Any:
        if not self.responses[str(status)]:
            return None
        named = self.examples[(str(status), self.media_type_for(status, mimetype))]
        return named[name] if name is not None else next(iter(named.values()))

    def response_schema(self, status: int, mimetype: str) -> dict:
        return self.responses[str(status)][mimetype].schema


_ARTICLE = {"integer": "an integer", "boolean": "a boolean (true or false)", "string": "a string"}


def _typed(kind: str, text: str) -> Any:
    """The text of a parameter as its schema's type, or None when it cannot be read so."""
    if kind == "integer":
        body = text[1:] if text[:1] == "-" else text
        return int(text) if body.isascii() and body.isdigit() and len(body) <= 18 else None
    if kind == "boolean":
        return {"true": True, "false": False}.get(text)
    return text


def _shown(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _lookup(param: Parameter, path: dict, query: dict, headers: Mapping[str, str]) -> str | None:
    if param.location == "path":
        return path.get(param.name)
    if param.location == "query":
        return query.get(param.name)
    return headers.get(param.name.lower())


def _decode(mimetype: str, body: bytes, schema: dict) -> Any:
    if mimetype == XML:
        try:
            return xmlcodec.decode(body, schema)
        except xmlcodec.XmlForbidden as exc:
            raise RequestInvalid("body_forbidden", str(exc), "body") from exc
        except xmlcodec.XmlMalformed as exc:
            raise RequestInvalid("body_malformed", str(exc), "body") from exc
        except xmlcodec.XmlMisshapen as exc:
            raise RequestInvalid("body_schema", f"request body: {exc}", "body") from exc
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise RequestInvalid("body_malformed", f"Request body is not valid JSON: {reason}.", "body") from exc
    if _deeper_than(value, MAX_BODY_DEPTH):
        raise RequestInvalid("body_malformed", f"Request body is not valid JSON: nested more than {MAX_BODY_DEPTH} levels.", "body")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False


# ---------------------------------------------------------------- compiling


class Contract:
    """Every operation of the specs (the vendor APIs', the admin API's), compiled, with a router in front."""

    def __init__(self, document: dict, *more: dict):
        self.schemas: dict[str, dict] = {}
        self.operations: dict[str, Operation] = {}
        self._routes: list[tuple[re.Pattern, dict[str, Operation]]] = []
        self._family_prefixes: dict[str, str] = {}  # first path segment(s), e.g. "/cdm/" -> family
        self.templates: list[tuple[str, Operation]] = []  # every full path template (server prefix included) and its operation
        for each in (document, *more):
            self._compile(dereference(each))

    def _compile(self, resolved: dict) -> None:
        self.schemas.update(resolved.get("components", {}).get("schemas", {}))
        top_servers = resolved.get("servers") or [{"url": "/"}]
        for template, item in sorted(resolved["paths"].items(), key=_concrete_first):
            by_method: dict[str, Operation] = {}
            item_params = item.get("parameters", [])
            for method in HTTP_METHODS:
                if method in item:
                    op = _compile_operation(method, template, item_params, item[method])
                    self.operations[op.operation_id] = op
                    by_method[method.upper()] = op
            family = next(iter(by_method.values())).family
            for server in item.get("servers") or top_servers:
                prefix = server["url"].rstrip("/")
                self._routes.append((_path_regex(prefix + template), by_method))
                self.templates.extend((prefix + template, op) for op in by_method.values())
                self._family_prefixes[prefix + "/".join(template.split("/")[:2]) + "/"] = family

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """Find the operation for a request; raise RouteNotFound or MethodNotAllowed."""
        for regex, by_method in self._routes:
            found = regex.match(path)
            if found:
                op = by_method.get(method)
                if op is None:
                    # OpenAPI matches concrete paths before templated ones: GET on
                    # /customer/merge is a 405 there, not getCustomersByIds(ids="merge").
                    raise MethodNotAllowed(sorted(by_method))
                return op, found.groupdict()
        raise RouteNotFound(path)

    def family_of_path(self, path: str) -> str | None:
        """The API family whose paths start like `path`, for errors on unknown routes."""
        return next((family for prefix, family in self._family_prefixes.items() if path.startswith(prefix)), None)


def _concrete_first(entry: tuple[str, Any]) -> tuple[int, int]:
    template = entry[0]
    return template.count("{"), -len(template)


def _path_regex(template: str) -> re.Pattern:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


def _compile_operation(method: str, template: str, item_params: list, spec: dict) -> Operation:
    params = {(p["name"], p["in"]): p for p in item_params}
    params.update({(p["name"], p["in"]): p for p in spec.get("parameters", [])})
    parameters = []
    for p in params.values():
        schema = p.get("schema", {})
        kind = schema.get("type", "string")
        if p["in"] not in ("path", "query", "header") or kind not in _ARTICLE:
            raise ValueError(
                f"{spec['operationId']}: only string, integer and boolean path/query/header parameters are compiled ({p['name']})"
            )
        parameters.append(Parameter(p["name"], p["in"], bool(p.get("required")), SchemaCheck(schema), schema.get("default"), kind))
    body = spec.get("requestBody") or {}
    body_media = {mt: SchemaCheck(media.get("schema", {})) for mt, media in body.get("content", {}).items()}
    responses: dict[str, dict[str, SchemaCheck]] = {}
    examples: dict[tuple[str, str], dict[str, Any]] = {}
    for status, response in spec.get("responses", {}).items():
        responses[status] = {}
        for mt, media in response.get("content", {}).items():
            check = SchemaCheck(media.get("schema", {}))
            responses[status][mt] = check
            examples[(status, mt)] = _examples(media, mt, check.schema)
    return Operation(
        operation_id=spec["operationId"],
        family=(spec.get("tags") or ["default"])[0],
        method=method.upper(),
        template=template,
        parameters=sorted(parameters, key=lambda p: ("header", "path", "query").index(p.location)),
        body_required=bool(body.get("required")),
        body_media=body_media,
        responses=responses,
        examples=examples,
        query_names=frozenset(p.name for p in parameters if p.location == "query"),
    )


def _examples(media: dict, mimetype: str, schema: dict) -> dict[str, Any]:
    """A media type's examples by name: its `examples` map, or its one `example` as "default"."""
    if "example" in media:
        values = {"default": media["example"]}
    else:
        values = {name: example.get("value") for name, example in (media.get("examples") or {}).items()}
    if mimetype == XML:
        values = {name: xmlcodec.decode(v.encode("utf-8"), schema) if isinstance(v, str) else v for name, v in values.items()}
    return values or {"default": None}
