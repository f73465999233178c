"""Token endpoints: simplejwt's views, with successful token requests audited (failures are
audited by the login-failed signal that authenticate() sends); and "who am I"."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenBackendError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts.models import User
from accounts.services import auth_attempt_record
from cipherguard.api import IsApiClient, problems
from cipherguard.ratelimit import Limit, TokenThrottle, client_ip, refresh_per_minute

JWT_RE = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
TOKEN_PAIR = inline_serializer("TokenPair", {"access": serializers.CharField(), "refresh": serializers.CharField()})


class TokenObtainApi(TokenObtainPairView):
    throttle_classes = [TokenThrottle]

    @extend_schema(
        operation_id="auth_token",
        request=inline_serializer(
            "TokenRequest", {"username": serializers.CharField(), "password": serializers.CharField()}
        ),
        responses={200: TOKEN_PAIR, **problems(400, 401, 403, 413, 415, 503)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().post(request, *args, **kwargs)
        if response.status_code == 200:
            username = str(request.data.get("username", ""))
            user = User.objects.filter(username=username).first()
            auth_attempt_record(user=user, username=username, success=True, channel="token")
        return response


class SingleUseRefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh with rotation, made single-use under concurrency.

    The stock code checks the blacklist, then blacklists with ``get_or_create``: several
    concurrent refreshes of one token all pass the check (measured: 1–12 successes of 12).
    Here the blacklist INSERT is the gate: ``BlacklistedToken.token`` is unique, so exactly one
    request inserts the row and rotates; the others hit the constraint and are refused."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])  # signature, expiry, audience, issuer, blacklist
        user = User.objects.filter(
            **{api_settings.USER_ID_FIELD: refresh.payload.get(api_settings.USER_ID_CLAIM)}
        ).first()
        if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
            raise InvalidToken("No active account found for the given token.")
        jti = refresh.payload[api_settings.JTI_CLAIM]
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=jti,
            defaults={"user": user, "token": str(refresh), "expires_at": datetime_from_epoch(refresh.payload["exp"])},
        )
        try:
            with transaction.atomic():
                BlacklistedToken.objects.create(token=outstanding)
        except IntegrityError:
            raise InvalidToken("Token is blacklisted") from None
        data = {"access": str(refresh.access_token)}
        refresh.set_jti()
        refresh.set_exp()
        refresh.set_iat()
        refresh.outstand()
        data["refresh"] = str(refresh)
        return data


def refresh_key(group: str, request: Request) -> str:
    """Refreshes are counted per address *and* account: the address with the user id of a refresh
    token whose signature, expiry, audience and issuer verify; the address alone for anything else.

    Not per address alone: many API clients behind one NAT refresh from one address, and one of
    them refreshing in a loop would use up the others' budget. A verified token is the key, not the
    claim as sent, so only the holder of a real token reaches its account's budget; garbage and
    forged tokens all share the address's one. (The limit is about load, not guessing: a refresh
    token is signed and cannot be guessed.)"""
    ip = client_ip(request)
    try:
        payload = token_backend.decode(str(request.data["refresh"]), verify=True)
    except (KeyError, TypeError, TokenBackendError, exceptions.APIException):  # no token, or an unreadable body
        return ip
    return f"{ip} user {payload.get(api_settings.USER_ID_CLAIM)}"


REFRESH_LIMITS = (Limit("token-refresh", refresh_key, refresh_per_minute),)


class TokenRefreshThrottle(TokenThrottle):
    """Token refresh: its own limit (``RATE_LIMIT_REFRESH_PER_MINUTE``), so refreshes never use up
    sign-in's (``RATE_LIMIT_TOKEN_PER_MINUTE``); fails closed like sign-in."""

    limits = REFRESH_LIMITS

    def allow_request(self, request: Request, view: Any) -> bool:
        # The key reads the body. Read here first, outside the limiter's store-outage handling, so
        # a bad body keeps its own answer (400, 413, 415) rather than a 503; it is counted all
        # the same (``finally``), and over the limit the 429 wins.
        try:
            request.data  # noqa: B018 (parsed for the key; a parse error is raised here)
        finally:
            super().allow_request(request, view)
        return True


class TokenRefreshApi(TokenRefreshView):
    serializer_class = SingleUseRefreshSerializer
    throttle_classes = [TokenRefreshThrottle]

    @extend_schema(
        operation_id="auth_token_refresh",
        request=inline_serializer(
            "RefreshRequest",
            {"refresh": serializers.RegexField(JWT_RE, max_length=4096, help_text="the refresh token, a JWT")},
        ),
        responses={200: TOKEN_PAIR, **problems(400, 401, 413, 415, 503)},
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


class WhoAmIApi(APIView):
    """The calling client as the API sees it: a cheap way to check credentials and quota. (Also
    the benchmark's framework ceiling: the same authentication, rate limits and DRF as scoring,
    and no other work.)"""

    permission_classes = [IsApiClient]

    @extend_schema(
        operation_id="auth_whoami",
        responses={
            200: inline_serializer(
                "WhoAmI",
                {
                    "username": serializers.CharField(),
                    "requests_per_hour": serializers.IntegerField(),
                    "burst_per_second": serializers.IntegerField(),
                },
            ),
            **problems(401, 403),
        },
    )
    def get(self, request: Request) -> Response:
        user = request.user
        return Response(
            {
                "username": user.get_username(),
                "requests_per_hour": user.api_requests_per_hour or settings.RATE_LIMIT_USER_PER_HOUR,
                "burst_per_second": user.api_burst_per_second or settings.RATE_LIMIT_BURST_PER_SECOND,
            }
        )
