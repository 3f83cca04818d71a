"""What the schemathesis tests share: the schema loaded from the spec file, and an XML deserializer."""

from __future__ import annotations

import os

import schemathesis

from mockserver.contract import xmlcodec
from mockserver.contract.spec import dereference, load_document
from mockserver.resources import spec_path

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


def reset_everything(app) -> None:
    """Back to a fresh start: the default state from the fixtures, no test session, no rule, an empty journal."""
    sessions = app.mock.sessions
    for listed in sessions.listed():
        if listed["id"] != "default":
            sessions.delete(listed["id"])
    sessions.default.faults.clear()
    sessions.default.journal.clear()
    sessions.default.store.reset()
