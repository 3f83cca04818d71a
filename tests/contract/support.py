"""What the schemathesis tests share: the schema loaded from the spec file, an XML deserializer, the slot
their app goes in, and the checks left out of negative XML cases."""

from __future__ import annotations

import os
from collections.abc import Iterator

import schemathesis
from flask import Flask
from schemathesis.specs.openapi.checks import negative_data_rejection

from mockserver.contract import xmlcodec
from mockserver.contract.spec import dereference, load_document
from mockserver.http import app as app_module
from mockserver.mock import create_app
from mockserver.resources import spec_path
from mockserver.settings import Settings

REPO_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "schemathesis.toml")
EXAMPLES = int(os.environ.get("MOCKSERVER_FUZZ_EXAMPLES", "25"))
STATEFUL_EXAMPLES = int(os.environ.get("MOCKSERVER_STATEFUL_EXAMPLES", str(max(150, EXAMPLES // 2))))

decode_xml = xmlcodec.DocumentReader(dereference(load_document())["components"]["schemas"])


@schemathesis.deserializer("application/xml")
def spec_xml(ctx, response):
    """XML answers are read with the spec's own `xml` mapping, so their schema is checked too."""
    return decode_xml(response.content)


def load_schema(path=None, config_path=REPO_CONFIG):
    """The vendor spec (or `path`), with the repository's schemathesis settings (or `config_path`'s)."""
    config = schemathesis.Config.from_path(config_path)
    schema = schemathesis.openapi.from_path(str(path or spec_path()), config=config)
    schema.config.generation.update(max_examples=EXAMPLES)
    return schema


class AppSlot(Flask):
    """The app a module's schema calls, known when the module is imported (schemathesis copies `schema.app`
    into each test it makes then), standing for the mock that the module's fixture builds and puts in `mock`:
    so no mock is built when the tests are only collected. A Flask app named as the mock's own app module,
    so that schemathesis harvests the constants it favours in generated data from the same modules."""

    def __init__(self) -> None:
        super().__init__(app_module.__name__)
        self.mock: Flask | None = None

    def __call__(self, environ, start_response):
        assert self.mock is not None, "the module's fixture has not put the mock in the slot"
        return self.mock(environ, start_response)


def mock_in(slot: AppSlot, settings: Settings) -> Iterator[Flask]:
    """A module fixture's body: the mock built from `settings`, in `slot` while the module's tests run."""
    mock = create_app(settings)
    mock.testing = True  # a mock bug (undocumented answer) raises instead of hiding in a 500
    slot.mock = mock
    try:
        yield mock
    finally:
        slot.mock = None


def untyped_xml_exclusions(case) -> list:
    """XML carries text only: a negative case that differs from valid data by a JSON type
    (null, a number for a string) becomes valid text once serialized, so schemathesis would
    wrongly expect a rejection. Negative XML bodies are covered by tests/http instead; every
    other check still runs on them."""
    negative = case.meta is not None and case.meta.generation.mode.value == "negative"
    return [negative_data_rejection] if negative and case.media_type == "application/xml" else []
