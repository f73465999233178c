from __future__ import annotations

from django.urls import path

from fraud.console import views

app_name = "console"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("", views.queue, name="queue"),
    path("take-next/", views.take_next, name="take-next"),
    path("bulk/", views.bulk, name="bulk"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("batches/", views.batches, name="batches"),
    path("batches/<int:job_id>/", views.batch_detail, name="batch"),
    path("batches/<int:job_id>/results.csv", views.batch_results, name="batch-results"),
    path("drift/", views.drift, name="drift"),
    path("backtests/", views.backtests, name="backtests"),
    path("backtests/<int:backtest_id>/", views.backtest_detail, name="backtest"),
    path("webhooks/", views.webhooks, name="webhooks"),
    path("cases/<int:case_id>/", views.case_detail, name="case"),
    path("cases/<int:case_id>/assign/", views.case_assign_view, name="case-assign"),
    path("cases/<int:case_id>/note/", views.case_note_view, name="case-note"),
    path("cases/<int:case_id>/escalate/", views.case_escalate_view, name="case-escalate"),
    path("cases/<int:case_id>/close/", views.case_close_view, name="case-close"),
    path("cases/<int:case_id>/close-group/", views.case_close_group_view, name="case-close-group"),
]
