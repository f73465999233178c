"""The accounts API's routes, under ``/api/v1/`` (the root URLconf includes them there)."""

from __future__ import annotations

from django.urls import path

from accounts.apis import TokenObtainApi, TokenRefreshApi, WhoAmIApi

urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="token-obtain"),
    path("auth/token/refresh/", TokenRefreshApi.as_view(), name="token-refresh"),
    path("auth/whoami/", WhoAmIApi.as_view(), name="whoami"),
]
