"""Logging filters: every record carries the request's correlation id, and nothing that looks
like a card number, an e-mail address or a token leaves the process. No Django import."""

from __future__ import annotations

import logging
import re

from cipherguard import context
from cipherguard.luhn import luhn_valid

# 12–19 digits, optionally grouped by spaces or dashes; redacted only when Luhn-valid, so order
# numbers and timestamps survive. Not the fraction of a decimal number: a metric logged as
# 0.9718... has a one-in-ten chance of passing Luhn.
_PAN = re.compile(r"(?<![0-9])(?<![0-9]\.)(?:[0-9][ -]?){11,18}[0-9](?![0-9])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    def pan(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        return "[PAN]" if 12 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)

    text = _JWT.sub("[TOKEN]", text)
    text = _BEARER.sub(r"\1[TOKEN]", text)
    text = _EMAIL.sub("[EMAIL]", text)
    return _PAN.sub(pan, text)


class RedactingFilter(logging.Filter):
    """Rewrites the formatted message (and string arguments) before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # django.request logs a 4xx/5xx after the middleware chain has returned (and reset the
        # context), but hands the request along: its id is on it.
        request = getattr(record, "request", None)
        record.request_id = context.request_id.get() or getattr(request, "request_id", None) or "-"
        return True


# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class PlainFormatter(logging.Formatter):
    """The human format, followed by the record's structured fields as ``key=value``: the JSON
    format carries them as keys, and without them a decision line would read only "fraud
    decision". Redacted like the message."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES and key not in ("request_id", "request") and not key.startswith("_")
        ]
        return f"{line} {redact(' '.join(fields))}" if fields else line
