from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.apis import TokenObtainApi, TokenRefreshApi, WhoAmIApi
from cipherguard import views
from fraud import apis, batch_apis, list_apis

api_v1 = [
    path("auth/token/", TokenObtainApi.as_view(), name="token-obtain"),
    path("auth/token/refresh/", TokenRefreshApi.as_view(), name="token-refresh"),
    path("auth/whoami/", WhoAmIApi.as_view(), name="whoami"),
    path("transactions/", apis.TransactionsApi.as_view(), name="transactions"),
    path("transactions/batch/", apis.TransactionBatchScoreApi.as_view(), name="transactions-batch"),
    path("transactions/<str:transaction_id>/", apis.TransactionDetailApi.as_view(), name="transaction-detail"),
    path(
        "transactions/<str:transaction_id>/feedback/",
        apis.TransactionFeedbackApi.as_view(),
        name="transaction-feedback",
    ),
    path("lists/", list_apis.ListEntriesApi.as_view(), name="lists"),
    path("lists/import/", list_apis.ListImportApi.as_view(), name="lists-import"),
    path("lists/<int:entry_id>/", list_apis.ListEntryDetailApi.as_view(), name="list-entry"),
    path("batches/", batch_apis.BatchCreateApi.as_view(), name="batches"),
    path("batches/<int:job_id>/", batch_apis.BatchDetailApi.as_view(), name="batch-detail"),
    path("batches/<int:job_id>/cancel/", batch_apis.BatchCancelApi.as_view(), name="batch-cancel"),
    path("batches/<int:job_id>/results/", batch_apis.BatchResultsApi.as_view(), name="batch-results"),
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
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]

handler400 = views.bad_request
handler403 = views.permission_denied
handler404 = views.page_not_found
handler500 = views.server_error
