"""openapi-core, the reference judge of the contract.

The compiled contract (`compiled.py`) serves requests; this module asks
openapi-core 0.23 the same questions, with one `OpenAPI` object built once. It
is used by the tests (every response the tests see is checked here, and the
differential test compares both judges on a generated corpus), by
`mockserver proxy`, and by `serve --validator openapi-core`.

openapi-core's own XML deserializer parses with the standard library (no
entity protection) and returns an Element, which no JSON Schema accepts; it
is replaced by the spec-driven, defusedxml-based codec, picking the schema by
the document's root element (`xml.name`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.request.exceptions import (
    InvalidRequestBody,
    MissingRequestBodyError,
    ParameterValidationError,
    SecurityValidationError,
)
from openapi_core.validation.response.exceptions import DataValidationError, HeaderValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

from mockserver.contract import xmlcodec
from mockserver.contract.compiled import XML, RawRequest
from mockserver.contract.errors import MethodNotAllowed, RequestInvalid, ResponseInvalid, RouteNotFound
from mockserver.contract.spec import dereference

# openapi-core checks no OAuth 2 scheme and warns once per request about it: eGain's operations
# name `egainOAuth` (for its scopes) beside `egainBearer`, which openapi-core does check.
warnings.filterwarnings("ignore", message="Unsupported scheme type", category=UserWarning, module=r"openapi_core\.")


class _Request:
    """openapi-core's request protocol over a RawRequest."""

    host_url = "http://mockserver"

    def __init__(self, raw: RawRequest):
        self.path = raw.path
        self.method = raw.method.lower()
        self.body = raw.body or None
        self.content_type = raw.headers.get("content-type", "application/octet-stream")
        self.parameters = RequestParameters(query=ImmutableMultiDict(raw.query), header=Headers(list(raw.headers.items())), cookie={})


class _Response:
    def __init__(self, status: int, headers: Iterable[tuple[str, str]], body: bytes):
        self.status_code = status
        self.headers = Headers(list(headers))
        self.data = body
        self.content_type = self.headers.get("Content-Type", "")


class Reference:
    """openapi-core's verdicts on requests and responses, as the contract's own exceptions."""

    def __init__(self, document: dict):
        schemas = dereference(document).get("components", {}).get("schemas", {})
        self._read_xml = xmlcodec.DocumentReader(schemas)
        # None skips openapi-core's check of the document (`OpenAPI.check_spec`), which its annotation leaves out.
        config = Config(spec_validator_cls=None, extra_media_type_deserializers={XML: self._xml_loads})  # type: ignore[arg-type]
        self.openapi = OpenAPI.from_dict(document, config=config)

    def _xml_loads(self, value: bytes, **parameters: str) -> Any:
        try:
            return self._read_xml(value)
        except (xmlcodec.XmlForbidden, xmlcodec.XmlMalformed, xmlcodec.XmlMisshapen) as exc:
            raise ValueError(str(exc)) from exc

    def request_errors(self, raw: RawRequest) -> list[Exception]:
        """Every contract error openapi-core finds, as the contract's own exceptions."""
        return [_request_error(error) for error in self.openapi.unmarshal_request(_Request(raw)).errors]

    def check_request(self, raw: RawRequest) -> None:
        """Raise the contract error openapi-core finds first, or nothing if it accepts the request."""
        for error in self.request_errors(raw):
            raise error

    def response_errors(self, raw: RawRequest, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> list[ResponseInvalid]:
        """Every way the answer breaks the spec, each named by the check it fails."""
        response = _Response(status, headers, body)
        result = self.openapi.unmarshal_response(_Request(raw), response)
        return [_response_error(error, status, response.content_type or "(none)") for error in result.errors]

    def check_response(self, raw: RawRequest, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        errors = self.response_errors(raw, status, headers, body)
        if errors:
            raise ResponseInvalid("; ".join(str(e) for e in errors), errors[0].check)


def _request_error(error: Exception) -> Exception:
    if isinstance(error, OperationNotFound):
        return MethodNotAllowed([])
    if isinstance(error, PathNotFound):
        return RouteNotFound(str(error))
    if isinstance(error, SecurityValidationError):
        return RequestInvalid("security", _describe(error), "header")
    if isinstance(error, ParameterValidationError):
        return RequestInvalid("parameter", _describe(error), error.location, error.name)
    if isinstance(error, MissingRequestBodyError):
        return RequestInvalid("body_missing", _describe(error), "body")
    if isinstance(error.__cause__, MediaTypeNotFound):
        return RequestInvalid("content_type", _describe(error), "header", "Content-Type")
    if isinstance(error, InvalidRequestBody):
        return RequestInvalid("body_schema", _describe(error), "body")
    return RequestInvalid("body_malformed", _describe(error), "body")


def _response_error(error: Exception, status: int, content_type: str) -> ResponseInvalid:
    if isinstance(error, ResponseNotFound):
        return ResponseInvalid(f"does not document status {status}", "status_code_conformance")
    if isinstance(error, DataValidationError) and isinstance(error.__cause__, MediaTypeNotFound):
        return ResponseInvalid(f"{status} does not document Content-Type {content_type}", "content_type_conformance")
    if isinstance(error, DataValidationError):
        return ResponseInvalid(f"{status} body: {_describe(error)}", "response_schema_conformance")
    if isinstance(error, HeaderValidationError):
        return ResponseInvalid(f"{status} header {getattr(error, 'name', '?')}: {_describe(error)}", "response_headers_conformance")
    return ResponseInvalid(f"{status}: {_describe(error)}")


def _describe(error: Exception) -> str:
    schema_errors = getattr(error.__cause__, "schema_errors", None)
    if schema_errors:
        return "; ".join(
            (".".join(str(part) for part in e.absolute_path) + ": " if e.absolute_path else "") + e.message for e in schema_errors
        )
    return f"{type(error).__name__}: {_text(error)}" + (f" ({_text(error.__cause__)})" if error.__cause__ else "")


def _text(error: BaseException) -> str:
    """str() of an openapi-core error; some raise UnicodeDecodeError on bodies that are not UTF-8."""
    try:
        return str(error)
    except UnicodeError:
        return f"{type(error).__name__} (on a body that is not UTF-8)"
