"""The root URLconf. Each app's routes live with the app and are included here by name, as
INSTALLED_APPS names the apps: the project package imports no app."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from cipherguard import views

# The admin says whose it is (its pages and the browser's tab), not Django's.
admin.site.site_header = "CipherGuard administration"
admin.site.site_title = "CipherGuard admin"
admin.site.index_title = "Users, clients, thresholds, models and the audit trail"

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("fraud.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script from a URL, not inline, so the docs
    # page works under our Content-Security-Policy.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:queue", permanent=False)),
    path("console/", include("fraud.console.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("favicon.ico", views.favicon),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]

handler400 = views.bad_request
handler403 = views.permission_denied
handler404 = views.page_not_found
handler500 = views.server_error
