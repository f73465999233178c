"""The fraud API's routes, under ``/api/v1/`` (the root URLconf includes them there); the console
has its own (``fraud/console/urls.py``)."""

from __future__ import annotations

from django.urls import path

from fraud.batches import apis as batches
from fraud.rules import apis as lists
from fraud.scoring import apis as scoring
from fraud.webhooks import apis as webhooks

urlpatterns = [
    path("transactions/", scoring.TransactionsApi.as_view(), name="transactions"),
    path("transactions/batch/", scoring.TransactionBatchScoreApi.as_view(), name="transactions-batch"),
    path("transactions/<str:transaction_id>/", scoring.TransactionDetailApi.as_view(), name="transaction-detail"),
    path(
        "transactions/<str:transaction_id>/feedback/",
        scoring.TransactionFeedbackApi.as_view(),
        name="transaction-feedback",
    ),
    path("lists/", lists.ListEntriesApi.as_view(), name="lists"),
    path("lists/import/", lists.ListImportApi.as_view(), name="lists-import"),
    path("lists/<int:entry_id>/", lists.ListEntryDetailApi.as_view(), name="list-entry"),
    path("batches/", batches.BatchCreateApi.as_view(), name="batches"),
    path("batches/<int:job_id>/", batches.BatchDetailApi.as_view(), name="batch-detail"),
    path("batches/<int:job_id>/cancel/", batches.BatchCancelApi.as_view(), name="batch-cancel"),
    path("batches/<int:job_id>/results/", batches.BatchResultsApi.as_view(), name="batch-results"),
    path("webhooks/", webhooks.WebhookEndpointsApi.as_view(), name="webhooks"),
    path("webhooks/event-types/", webhooks.WebhookEventTypesApi.as_view(), name="webhook-event-types"),
    path("webhooks/<int:endpoint_id>/", webhooks.WebhookEndpointDetailApi.as_view(), name="webhook"),
    path("webhooks/<int:endpoint_id>/rotate-secret/", webhooks.WebhookSecretRotateApi.as_view(), name="webhook-rotate"),
    path("webhooks/<int:endpoint_id>/deliveries/", webhooks.WebhookDeliveriesApi.as_view(), name="webhook-deliveries"),
    path(
        "webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/resend/",
        webhooks.WebhookDeliveryResendApi.as_view(),
        name="webhook-delivery-resend",
    ),
]
