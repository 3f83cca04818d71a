"""Credentials never reach logs in full."""

import logging

from mockserver.credentials import SecretFilter, mask, mask_text


def test_mask_keeps_a_hint_only():
    assert mask("demo-key") == "de…(8)"
    assert mask(None) == "-" and mask("") == "-"


def test_mask_text_finds_credentials_in_any_message():
    text = "headers: Authorization: Bearer demo-user-token, xx-relay-api-key: demo-key; {'xx-relay-api-key': 'other-key'}"
    masked = mask_text(text, ["xx-relay-api-key"])
    assert "demo-user-token" not in masked and "demo-key" not in masked and "other-key" not in masked
    assert "Bearer de…(15)" in masked


def test_filter_rewrites_records():
    record = logging.LogRecord("mockserver", logging.INFO, __file__, 1, "got %s", ("Bearer abcdef",), None)
    assert SecretFilter().filter(record) is True
    assert record.getMessage() == "got Bearer ab…(6)"
