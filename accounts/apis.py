"""Token endpoints: simplejwt's views, with successful token requests audited (failures are
audited by the login-failed signal that authenticate() sends)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt.views import TokenObtainPairView

from accounts.models import User
from accounts.services import auth_attempt_record


class TokenObtainApi(TokenObtainPairView):
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().post(request, *args, **kwargs)
        if response.status_code == 200:
            username = str(request.data.get("username", ""))
            user = User.objects.filter(username=username).first()
            auth_attempt_record(user=user, username=username, success=True, channel="token")
        return response
