"""What the pipeline knows of an API family, and what flows between its stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mockserver.contract.compiled import Operation, RawRequest, ValidatedRequest
from mockserver.contract.errors import RequestInvalid
from mockserver.errors import ApiError
from mockserver.state.model import Config
from mockserver.state.store import Store


@dataclass(frozen=True)
class Call:
    """A handler's whole input: the validated request and the store to run commands on."""

    request: ValidatedRequest
    store: Store


@dataclass
class Reply:
    """A handler's answer before rendering: a status and a JSON-shaped payload (or None)."""

    status: int
    payload: Any = None


@dataclass(frozen=True)
class Family:
    """One vendor API: how it authenticates, which formats it answers in, its handlers, its errors.

    `authenticate(config, operation, raw, path_values)` raises ApiError (401/403);
    it reads the fixed configuration only, never the store;
    `negotiate(raw)` gives the response media type, or None for a 406;
    `handlers` maps every operationId of the family to its function;
    `error_body(error)` is the API's own error format, and
    `contract_error(invalid)` the documented 400 for a broken contract rule.
    """

    name: str
    authenticate: Callable[[Config, Operation, RawRequest, dict[str, str]], None]
    negotiate: Callable[[RawRequest], str | None]
    handlers: dict[str, Callable[[Call], Reply]]
    error_body: Callable[[ApiError], dict]
    contract_error: Callable[[RequestInvalid], ApiError]
