"""Passwords in URLs are masked where shown and scrubbed from any text and log record."""

from __future__ import annotations

import logging

from dnc.secrets import SecretFilter, mask_url, password, remember, scrub


def test_mask_url_hides_only_the_password():
    assert mask_url("postgresql://dnc:s3cr%40t@db:5432/x") == "postgresql://dnc:***@db:5432/x"
    assert mask_url("http://alice:pw@host:5000") == "http://alice:***@host:5000"
    assert mask_url("sqlite:///optuna.db") == "sqlite:///optuna.db"
    assert mask_url("http://host:5000") == "http://host:5000"
    assert password("postgresql://dnc:s3cr%40t@db/x") == "s3cr@t"
    assert password("sqlite:///x.db") is None


def test_remembered_passwords_are_scrubbed_from_text_and_log_records(caplog):
    remember("postgresql://dnc:hunter2-xyz@db/x")
    assert scrub("FATAL: password hunter2-xyz rejected") == "FATAL: password *** rejected"
    handler = logging.StreamHandler()
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "url %s", ("hunter2-xyz",), None)
    assert SecretFilter().filter(record)
    assert record.getMessage() == "url ***"
    try:
        raise RuntimeError("connect to db with hunter2-xyz failed")
    except RuntimeError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    SecretFilter().filter(record)
    assert "hunter2-xyz" not in handler.format(record)


def test_any_url_password_in_a_text_is_masked():
    text = "#0 : storage.url=postgresql+psycopg://dnc:n0tsaved@db:5432/x tracking.uri=http://a:b@h"
    assert scrub(text) == "#0 : storage.url=postgresql+psycopg://dnc:***@db:5432/x tracking.uri=http://a:***@h"
    assert scrub("sqlite:///x.db and https://host/path") == "sqlite:///x.db and https://host/path"
    # as Hydra lists a multirun's overrides
    assert scrub(r"storage.url=postgresql\://u\:pw9@db\:1/x") == r"storage.url=postgresql\://u\:***@db\:1/x"
