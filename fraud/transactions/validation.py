"""Strict input fields for the transaction API.

Stricter than DRF's defaults on purpose: DRF's numeric and date fields accept non-ASCII digits
(``"٤٢"`` parses as 42) and turn naive timestamps into local time. Codes come from maintained
ISO data (pycountry for ISO 4217 / 3166-1, Babel's CLDR data for currency minor units)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import pycountry
from babel.numbers import get_currency_precision
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers

from cipherguard.api import StrictSerializer, invalid_field
from fraud.models import Channel
from fraud.transactions.cards import InvalidCardNumberError, validate_pan

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
AMOUNT_RE = re.compile(r"-?[0-9]{1,14}(\.[0-9]{1,8})?")  # a sign only to say "must be > 0" clearly
IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
TIMESTAMP_RE = re.compile(r"[0-9T:.+\-Z ]{10,40}")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

# ISO 4217 codes that are not money a card payment can be in.
_NOT_PAYMENT_CURRENCIES = {"XXX", "XTS"}


@cache
def currency_codes() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies if c.alpha_3 not in _NOT_PAYMENT_CURRENCIES)


@cache
def country_codes() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@cache
def currency_decimals(code: str) -> int:
    return int(get_currency_precision(code))


def places_message(currency: str) -> str:
    return f"{currency} allows at most {currency_decimals(currency)} decimal places."


# A float64 as pandas and Python print it (``repr``): ``99.80000000000001``, ``100.0``, ``1e+16``.
FLOAT_TEXT_RE = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,40})?([eE][-+]?[0-9]{1,3})?")
# How far, in units in the last place of the nearest minor-unit amount, a printed float may be
# from it and still be that amount. Whole cents converted to float64 and multiplied or summed a
# few times (the benchmark multiplies some fraud amounts by 5: 19.96 * 5 prints as
# 99.80000000000001) land at most ~2 ULPs away; 8 leaves room for a short chain of such steps.
# A sub-cent digit written on purpose is orders of magnitude further: 99.805 is ~10**11 ULPs
# from 99.80, and up to the default FRAUD_MAX_AMOUNT (1,000,000) a change in the 8th decimal, the
# finest an amount may have, is over 80 ULPs.
FLOAT_NOISE_ULPS = 8


class AmountPrecisionError(ValueError):
    """An amount with more decimals than its currency has, beyond float noise."""


def amount_from_float_text(text: str, currency: str) -> Decimal | None:
    """The amount, in whole minor units of ``currency``, that ``text`` (a float64 as printed)
    stands for when it is within ``FLOAT_NOISE_ULPS`` of one: ``"99.80000000000001"`` and
    ``"99.8"`` give ``Decimal("99.80")``, ``"1e2"`` gives ``Decimal("100.00")``. None when
    ``text`` is not such a number (the amount's own validation then says why); raises
    ``AmountPrecisionError`` when it has more decimals than the currency beyond float noise.
    Sign and range are left to the amount's validation. For files written from floats only: the
    API's amounts are decimals and are never rounded."""
    if not FLOAT_TEXT_RE.fullmatch(text):
        return None
    try:
        value = Decimal(text)
        nearest = value.quantize(Decimal(1).scaleb(-currency_decimals(currency)))
    except InvalidOperation:  # more digits than Decimal's context: not an amount at all
        return None
    if abs(value - nearest) > FLOAT_NOISE_ULPS * Decimal(math.ulp(float(nearest))):
        raise AmountPrecisionError(places_message(currency))
    return nearest


ID_MESSAGE = "Use 1–64 characters: ASCII letters, digits and . _ : - (starting with a letter or digit)."
ID_SCHEMA = {"type": "string", "pattern": f"^{ID_RE.pattern}$", "minLength": 1, "maxLength": 64}


def path_identifier(value: str, field: str) -> str:
    """An identifier from the URL, checked as the body's are: a NUL byte or any other text the
    database cannot hold never reaches a query."""
    if not ID_RE.fullmatch(value):
        raise invalid_field(field, ID_MESSAGE)
    return value


def path_identifier_schema(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, ID_SCHEMA, OpenApiParameter.PATH, description=description)


@extend_schema_field(ID_SCHEMA)
class IdentifierField(serializers.CharField):
    """1–64 ASCII letters, digits and ``._:-``, starting with a letter or digit."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if not ID_RE.fullmatch(data):
            raise serializers.ValidationError(ID_MESSAGE)
        return data


# What the schema promises of an amount: above zero, at most 14 digits and 8 decimals. (How many
# decimals a currency allows is checked against the currency and said in the description.)
# A JSON number is read too (by its shortest printed form, so 125.5 is 125.5 exactly), so the
# schema says both.
AMOUNT_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^(?![0.]+$)[0-9]{1,14}(\.[0-9]{1,8})?$"},
        {"type": "number", "minimum": 0, "exclusiveMinimum": True},
    ],
    "example": "125.50",
    "description": "a decimal above zero, best as a string (a number is read as written, e.g. 125.5); no more "
    "decimals than the currency has (EUR 2, JPY 0)",
}


@extend_schema_field(AMOUNT_SCHEMA)
class AmountField(serializers.Field):
    """A positive decimal as a JSON string (``"125.50"``) or number, ASCII digits only."""

    default_error_messages = {
        "invalid": "Must be a positive decimal number such as 125.50 (ASCII digits, dot as separator)."
    }

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            self.fail("invalid")
        text = data if isinstance(data, str) else repr(data)
        if not AMOUNT_RE.fullmatch(text):
            self.fail("invalid")
        try:
            value = Decimal(text)
        except InvalidOperation:
            self.fail("invalid")
        if value <= 0:
            raise serializers.ValidationError("Must be greater than 0.")
        maximum = Decimal(settings.FRAUD_MAX_AMOUNT)
        if value > maximum:
            raise serializers.ValidationError(f"Must be at most {maximum}.")
        return value

    def to_representation(self, value: Decimal) -> str:
        return format(value.normalize(), "f")


def _code_enum(codes: Any, example: str) -> dict[str, Any]:
    return {"type": "string", "enum": sorted(codes()), "example": example}


@extend_schema_field(_code_enum(currency_codes, "EUR"))
class CurrencyField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not re.fullmatch(r"[A-Z]{3}", data) or data not in currency_codes():
            raise serializers.ValidationError("Must be an ISO 4217 currency code in capitals, such as EUR.")
        return data


@extend_schema_field(_code_enum(country_codes, "FR"))
class CountryField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not re.fullmatch(r"[A-Z]{2}", data) or data not in country_codes():
            raise serializers.ValidationError("Must be an ISO 3166-1 alpha-2 country code in capitals, such as FR.")
        return data


class TimestampError(ValueError):
    """Why a timestamp cannot be read, in words for whoever sent it."""


UNREADABLE_TIMESTAMP = "Must be an ISO 8601 timestamp with a timezone, such as 2026-11-27T10:15:00Z."


def parse_timestamp(text: Any) -> datetime:
    """The one reading of a timestamp, for every input that carries one (transactions, imports,
    list expiries): ISO 8601 in ASCII, at most 40 characters, with an explicit offset (``Z`` or
    ``+02:00``). Raises ``TimestampError``; the caller sets the bounds (not in the future, not
    before 2000, an expiry within five years)."""
    if not isinstance(text, str) or not TIMESTAMP_RE.fullmatch(text):
        raise TimestampError(UNREADABLE_TIMESTAMP)
    try:
        moment = parse_datetime(text)
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise TimestampError(UNREADABLE_TIMESTAMP)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TimestampError("Must include a timezone offset (Z or ±hh:mm).")
    return moment


@extend_schema_field(OpenApiTypes.DATETIME)
class AwareTimestampField(serializers.Field):
    """ISO 8601 with an explicit offset (``Z`` or ``+02:00``), not far in the future."""

    def to_internal_value(self, data: Any) -> datetime:
        try:
            value = parse_timestamp(data)
        except TimestampError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if value > timezone.now() + timedelta(seconds=settings.FRAUD_MAX_FUTURE_SKEW_SECONDS):
            raise serializers.ValidationError("Must not be in the future.")
        if value < EARLIEST:
            raise serializers.ValidationError("Must not be before 2000-01-01.")
        return value

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


CARD_SECURITY_CODE_FIELDS = {
    "cvv",
    "cvc",
    "cvv2",
    "cvc2",
    "cid",
    "card_cvv",
    "card_cvc",
    "security_code",
    "card_security_code",
}


@extend_schema_field(
    {"type": "string", "pattern": "^[0-9]{12,19}$", "writeOnly": True, "description": "PAN, Luhn-valid; never returned"}
)
class CardNumberField(serializers.Field):
    """An optional PAN: 12–19 ASCII digits, Luhn-valid. Never echoed in errors."""

    def to_internal_value(self, data: Any) -> str:
        try:
            return validate_pan(data)
        except InvalidCardNumberError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value: str) -> str:  # never used for output; masked values only
        return ""


@extend_schema_field({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})
class IPAddressField(serializers.IPAddressField):
    """An IPv4 or IPv6 address, as the schema says so."""


class TransactionInputSerializer(StrictSerializer):
    """One transaction to score, from the API, a batch job or an import."""

    transaction_id = IdentifierField()
    customer_id = IdentifierField()
    merchant_id = IdentifierField()
    amount = AmountField()
    currency = CurrencyField()
    country = CountryField()
    timestamp = AwareTimestampField()
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    card_number = CardNumberField(required=False)
    ip_address = IPAddressField(required=False, help_text="the payer's IP address, for IP-range lists")

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            codes = sorted(k for k in data if str(k).lower() in CARD_SECURITY_CODE_FIELDS)
            if codes:
                # PCI DSS: a card security code is never stored, so never accepted either. The
                # rest of the body is still checked, so that every error is reported at once.
                errors: dict[str, Any] = {}
                try:
                    super().to_internal_value({k: v for k, v in data.items() if k not in codes})
                except serializers.ValidationError as exc:
                    if isinstance(exc.detail, dict):
                        errors.update(exc.detail)
                errors |= {k: ["Card security codes are never accepted."] for k in codes}
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        exponent = attrs["amount"].normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > currency_decimals(attrs["currency"]):
            raise serializers.ValidationError({"amount": [places_message(attrs["currency"])]})
        return attrs


_FIELDS = frozenset(TransactionInputSerializer._declared_fields)
_REQUIRED = frozenset(name for name, field in TransactionInputSerializer._declared_fields.items() if field.required)
_CHANNELS = frozenset(Channel.values)


def fast_identifier(value: Any) -> str | None:
    """``IdentifierField``'s accepted values, or None (the fast paths' building blocks: each
    accepts exactly what its field accepts and returns what it returns)."""
    return value if type(value) is str and ID_RE.fullmatch(value) else None


def fast_amount(amount: Any, currency: str) -> Decimal | None:
    """``AmountField`` plus the serializers' decimal-places rule for ``currency``."""
    if type(amount) is str:
        text = amount
    elif type(amount) in (int, float):
        text = repr(amount)
    else:
        return None
    if not AMOUNT_RE.fullmatch(text):
        return None
    value = Decimal(text)
    if value <= 0 or value > Decimal(settings.FRAUD_MAX_AMOUNT):
        return None
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > currency_decimals(currency):
        return None
    return value


def fast_timestamp(stamp: Any) -> datetime | None:
    """``AwareTimestampField``."""
    try:
        moment = parse_timestamp(stamp)
    except TimestampError:
        return None
    if moment > timezone.now() + timedelta(seconds=settings.FRAUD_MAX_FUTURE_SKEW_SECONDS) or moment < EARLIEST:
        return None
    return moment


def _fast(raw: Any) -> dict[str, Any] | None:
    """The validated transaction when ``raw`` is well-formed, by plain checks that accept exactly
    what ``TransactionInputSerializer`` accepts and return exactly what it returns (a property
    test holds them to it); None for anything else, which the serializer then explains.

    DRF spent ~150 µs validating one transaction, most of a batch row's cost; this takes ~10."""
    if type(raw) is not dict or not raw.keys() >= _REQUIRED or not raw.keys() <= _FIELDS:
        return None
    out: dict[str, Any] = {}
    for name in ("transaction_id", "customer_id", "merchant_id"):
        if (identifier := fast_identifier(raw[name])) is None:
            return None
        out[name] = identifier
    currency, country = raw["currency"], raw["country"]
    if type(currency) is not str or currency not in currency_codes() or type(country) is not str:
        return None
    if country not in country_codes():
        return None
    if (amount := fast_amount(raw["amount"], currency)) is None:
        return None
    out["amount"], out["currency"], out["country"] = amount, currency, country
    if (moment := fast_timestamp(raw["timestamp"])) is None:
        return None
    out["timestamp"] = moment
    if "channel" in raw:
        channel = raw["channel"]
        if type(channel) is not str or channel not in _CHANNELS:
            return None
        out["channel"] = channel
    if "ip_address" in raw:
        # The common case only (a canonical IPv4 address); anything else takes the serializer.
        ip = raw["ip_address"]
        if type(ip) is not str or not IPV4_RE.fullmatch(ip) or any(int(part) > 255 for part in ip.split(".")):
            return None
        if any(len(part) > 1 and part[0] == "0" for part in ip.split(".")):
            return None
        out["ip_address"] = ip
    if "card_number" in raw:
        try:
            out["card_number"] = validate_pan(raw["card_number"])
        except InvalidCardNumberError:
            return None
    return out


def validate_transaction(raw: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(validated data, None) or (None, errors by field). Well-formed input takes the fast path;
    anything else goes through ``TransactionInputSerializer`` for its exact error messages."""
    data = _fast(raw)
    if data is not None:
        return data, None
    serializer = TransactionInputSerializer(data=raw)
    if serializer.is_valid():
        return dict(serializer.validated_data), None
    return None, serializer.errors
