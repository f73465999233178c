"""Structured logs: JSON lines with the request's correlation id, decisions as events, and no
card number, e-mail address or token in any line."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest
from django.conf import settings

from cipherguard import context
from cipherguard.logs import redact
from tests.fraud.scoring.test_scoring_api import URL, body


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("card 4111111111111111 declined", "card [PAN] declined"),
        ("card 4111 1111 1111 1111 declined", "card [PAN] declined"),
        ("card 4111-1111-1111-1111", "card [PAN]"),
        ("order 4111111111111112 (not Luhn) stays", "order 4111111111111112 (not Luhn) stays"),
        ("mail ann.lee+fraud@example.co.uk now", "mail [EMAIL] now"),
        ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer [TOKEN]"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.sig-nature_1", "token [TOKEN]"),
        ("timestamp 20261127103000 stays", "timestamp 20261127103000 stays"),
        # A metric's fraction whose 16 digits happen to pass Luhn is not a card.
        ("auc_roc: 0.9718222190634463,", "auc_roc: 0.9718222190634463,"),
        ("pan 4111111111111111.", "pan [PAN]."),
    ],
)
def test_redaction(raw, expected):
    assert redact(raw) == expected


@pytest.fixture
def json_log():
    """The production logging config (JSON), writing to a buffer."""
    stream = io.StringIO()
    config = json.loads(json.dumps(settings.LOGGING))
    config["formatters"]["json"]["()"] = "pythonjsonlogger.json.JsonFormatter"
    config["handlers"]["console"] = {
        "class": "logging.StreamHandler",
        "stream": stream,
        "formatter": "json",
        "filters": ["request_id", "redact"],
    }
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    logging.config.dictConfig(settings.LOGGING)


def test_a_log_line_is_json_with_the_request_id_and_no_secrets(json_log):
    token = context.request_id.set("req-123")
    try:
        logging.getLogger("cipherguard.test").warning("customer paid with %s from %s", "4111111111111111", "a@b.io")
    finally:
        context.request_id.reset(token)
    line = json_log()[-1]
    assert line["request_id"] == "req-123" and line["level"] == "WARNING" and line["logger"] == "cipherguard.test"
    assert line["message"] == "customer paid with [PAN] from [EMAIL]"


def test_each_decision_is_logged_as_an_event_under_the_callers_request_id(json_log, alice_api, active_model):
    response = alice_api.post(
        URL, body(transaction_id="logged", card_number="4111111111111111"), format="json", HTTP_X_REQUEST_ID="corr-42"
    )
    assert response["X-Request-ID"] == "corr-42"
    events = [line for line in json_log() if line.get("event") == "fraud.decision"]
    assert len(events) == 1
    event = events[0]
    assert event["request_id"] == "corr-42" and event["transaction_id"] == "logged"
    assert event["model_version"] == active_model.version and event["decision"] == response.json()["decision"]
    assert isinstance(event["reasons"], list)
    assert "4111111111111111" not in json.dumps(json_log())


def test_djangos_own_request_log_lines_carry_the_request_id(json_log, alice_api, active_model):
    """django.request logs a 4xx after the middleware returned: the id still reaches the line."""
    response = alice_api.post(URL, body(amount="-5"), format="json", HTTP_X_REQUEST_ID="corr-400")
    assert response.status_code == 400
    lines = [line for line in json_log() if line["logger"] == "django.request"]
    assert lines and all(line["request_id"] == "corr-400" for line in lines)
    assert lines[-1]["status_code"] == 400


def test_the_request_id_travels_with_enqueued_tasks():
    from types import SimpleNamespace

    from cipherguard.celery import REQUEST_ID_HEADER, _carry_request_id, _restore_request_id, _task_finished

    headers: dict = {}
    token = context.request_id.set("upload-7")
    try:
        _carry_request_id(headers=headers)
    finally:
        context.request_id.reset(token)
    assert headers == {REQUEST_ID_HEADER: "upload-7"}
    _restore_request_id(task=SimpleNamespace(request=SimpleNamespace(**headers)))
    assert context.request_id.get() == "upload-7"
    _task_finished()
    assert context.request_id.get() == ""


@pytest.mark.parametrize(("accesslog", "lines"), [(None, 0), ("-", 1)])
def test_gunicorn_writes_access_lines_only_when_asked(monkeypatch, tmp_path, accesslog, lines):
    """The JSON logging config must not switch access lines on by itself (gunicorn's default)."""
    import runpy
    from datetime import timedelta
    from pathlib import Path
    from unittest import mock

    from gunicorn.config import Config

    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    conf = runpy.run_path(str(Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"))
    cfg = Config()
    cfg.set("logconfig_dict", conf["logconfig_dict"])
    if accesslog:
        cfg.set("accesslog", accesslog)
    logger = conf["logger_class"](cfg)
    with mock.patch.object(logger.access_log, "info") as info:
        request = mock.Mock(headers=[], method="POST", uri="/api/v1/transactions/", path="/api/v1/transactions/",
                            query="", version=(1, 1))  # fmt: skip
        response = mock.Mock(status="201 Created", sent=120, headers=[])
        environ = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST", "RAW_URI": "/api/v1/transactions/",
                   "PATH_INFO": "/api/v1/transactions/", "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1"}  # fmt: skip
        logger.access(response, request, environ, timedelta(milliseconds=3))
    assert info.call_count == lines
