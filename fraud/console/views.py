"""The analysts' console: server-rendered, session login, CSRF on every form. Views parse
input, call one service and render; permissions come from the selectors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import wraps
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import Throttled

from cipherguard.ratelimit import Limit, RateLimiterUnavailable, enforce, ip_per_minute
from cipherguard.replica import replica_reads
from fraud.backtests.services import backtest_create
from fraud.batches.services import BatchInputError, batch_create_from_csv, batch_result_lines
from fraud.cases.selectors import (
    QueueFilters,
    case_get_for_user,
    case_group_close_refusal,
    case_history,
    case_queue,
    cases_related,
    cases_related_active_counts,
    console_analysts,
    customer_history,
    merchant_activity,
    user_can_use_console,
)
from fraud.cases.services import (
    CaseActionError,
    case_add_note,
    case_assign,
    case_close,
    case_close_group,
    case_escalate,
    case_take_next,
    cases_bulk_assign,
    cases_bulk_close,
)
from fraud.console import charts
from fraud.console.forms import (
    AssignForm,
    BatchUploadForm,
    BulkForm,
    CloseForm,
    ConsoleLoginForm,
    EscalateForm,
    GroupCloseForm,
    NoteForm,
    QueueFilterForm,
)
from fraud.console.selectors import dashboard_stats
from fraud.models import (
    Backtest,
    BacktestStatus,
    BatchItem,
    BatchJob,
    BatchStatus,
    CaseStatus,
    Decision,
    DriftReport,
    Rule,
    RuleStatus,
)
from fraud.rules.services import PolicyError
from fraud.webhooks.selectors import webhook_endpoints_health

View = Callable[..., HttpResponse]
LOGIN_LIMITS = (Limit("login-ip", "ip", ip_per_minute),)


def analyst_required(view: View) -> View:
    """Signed-in analysts and admins only: anonymous users go to the login page, anyone else
    (an API client's account) gets a 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("console:login"))
        if not user_can_use_console(request.user):
            return render(
                request, "error.html", {"status": 403, "detail": "The console is for analysts and admins."}, status=403
            )
        return view(request, *args, **kwargs)

    return wrapper


class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    authentication_form = ConsoleLoginForm
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Per-IP limit on sign-in attempts, failing closed when the limiter is down.
        try:
            enforce(request, LOGIN_LIMITS, fail_closed=True)
        except Throttled as exc:
            return _limited(request, 429, "Too many sign-in attempts from your address. Try again shortly.", exc.wait)
        except RateLimiterUnavailable as exc:
            return _limited(request, 503, "Sign-in is briefly unavailable. Try again shortly.", exc.wait)
        return super().post(request, *args, **kwargs)


def _limited(request: HttpRequest, status: int, detail: str, wait: float | None) -> HttpResponse:
    response = render(request, "error.html", {"status": status, "detail": detail}, status=status)
    response["Retry-After"] = str(int(wait or 30))
    return response


class LogoutView(auth_views.LogoutView):
    pass


@require_GET
@analyst_required
@replica_reads
def queue(request: HttpRequest) -> HttpResponse:
    form = QueueFilterForm(request.GET)
    # Invalid filters are shown with their errors and the default queue below them.
    filters = form.filters() if form.is_valid() else QueueFilters()
    now = timezone.now()
    cases = case_queue(user=request.user, filters=filters, now=now)
    page = Paginator(cases, 25).get_page(request.GET.get("page"))
    related = cases_related_active_counts(cases=list(page.object_list))
    for case in page.object_list:
        case.related_active = related.get(case.pk, 0)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "console/queue.html",
        {
            "form": form,
            "page": page,
            "now": now,
            "query": query.urlencode(),
            "analysts": console_analysts(),
            "bulk": BulkForm(),
            "statuses": CaseStatus,
        },
    )


@require_POST
@analyst_required
def take_next(request: HttpRequest) -> HttpResponse:
    case = case_take_next(analyst=request.user)
    if case is None:
        messages.info(request, "No unassigned open cases left. Nice work.")
        return redirect("console:queue")
    messages.success(request, f"Case {case.pk} is yours.")
    return redirect("console:case", case_id=case.pk)


@require_GET
@analyst_required
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    tx = case.transaction
    related = cases_related(case=case, user=request.user)
    habits = customer_history(tx=tx)
    return render(
        request,
        "console/case.html",
        {
            "case": case,
            "tx": tx,
            "now": timezone.now(),
            "related": related,
            "group_closable": [r for r in related.active if not r.refusal],
            "group_refusal": case_group_close_refusal(case=case, user=request.user),
            "timeline": habits.timeline,
            "unusual": habits.current,
            "merchant": merchant_activity(tx=tx),
            "history": case_history(case=case),
            "notes": case.notes.select_related("author"),
            "assign_form": AssignForm(initial={"assignee": case.assignee_id or request.user.pk}),
            "note_form": NoteForm(),
            "escalate_form": EscalateForm(),
            "close_form": CloseForm(),
            "group_form": GroupCloseForm(auto_id="group_%s"),
        },
    )


def _form_errors(request: HttpRequest, form: forms.Form) -> None:
    for field, errors in form.errors.items():
        prefix = "" if field == NON_FIELD_ERRORS else f"{field}: "
        messages.error(request, f"{prefix}{' '.join(errors)}")


def _act(
    request: HttpRequest, case_id: int, form_class: type, action: Callable[..., Any], success: str
) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    form = form_class(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("console:case", case_id=case.pk)
    try:
        action(case, form.cleaned_data)
    except CaseActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)
    return redirect("console:case", case_id=case.pk)


@require_POST
@analyst_required
def case_assign_view(request: HttpRequest, case_id: int) -> HttpResponse:
    return _act(
        request,
        case_id,
        AssignForm,
        lambda c, d: case_assign(case=c, assignee=d["assignee"], actor=request.user),
        "Assigned.",
    )


@require_POST
@analyst_required
def case_note_view(request: HttpRequest, case_id: int) -> HttpResponse:
    return _act(
        request,
        case_id,
        NoteForm,
        lambda c, d: case_add_note(case=c, author=request.user, body=d["body"]),
        "Note added.",
    )


@require_POST
@analyst_required
def case_escalate_view(request: HttpRequest, case_id: int) -> HttpResponse:
    return _act(
        request,
        case_id,
        EscalateForm,
        lambda c, d: case_escalate(case=c, actor=request.user, reason=d["reason"]),
        "Escalated.",
    )


@require_POST
@analyst_required
def case_close_view(request: HttpRequest, case_id: int) -> HttpResponse:
    return _act(
        request,
        case_id,
        CloseForm,
        lambda c, d: case_close(case=c, actor=request.user, outcome=d["outcome"], note=d["note"]),
        "Closed. The outcome labels the transaction for retraining.",
    )


@require_POST
@analyst_required
def case_close_group_view(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_get_for_user(user=request.user, case_id=case_id)
    form = GroupCloseForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("console:case", case_id=case.pk)
    try:
        closed = case_close_group(
            case=case,
            related_ids=form.related_ids,
            actor=request.user,
            outcome=form.cleaned_data["outcome"],
            note=form.cleaned_data["note"],
        )
    except CaseActionError as exc:
        messages.error(request, str(exc))
    else:
        others = [f"#{c.pk}" for c in closed if c.pk != case.pk]
        messages.success(
            request,
            f"Closed case #{case.pk} and {len(others)} related case{pluralize(len(others))} ({', '.join(others)}). "
            "The outcome labels their transactions for retraining.",
        )
    return redirect("console:case", case_id=case.pk)


@require_POST
@analyst_required
def bulk(request: HttpRequest) -> HttpResponse:
    form = BulkForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return redirect("console:queue")
    try:
        if form.cleaned_data["action"] == "assign":
            n = cases_bulk_assign(case_ids=form.case_ids, assignee=form.cleaned_data["assignee"], actor=request.user)
            messages.success(request, f"Assigned {n} case(s) to {form.cleaned_data['assignee'].get_username()}.")
        else:
            n = cases_bulk_close(case_ids=form.case_ids, outcome=form.cleaned_data["outcome"], actor=request.user)
            messages.success(request, f"Closed {n} case(s).")
    except CaseActionError as exc:
        messages.error(request, str(exc))
    return redirect("console:queue")


@require_GET
@analyst_required
@replica_reads
def dashboard(request: HttpRequest) -> HttpResponse:
    stats = dashboard_stats(now=timezone.now())
    short_days = [d[5:] for d in stats["days"]]
    decisions = stats["decisions"]
    # All three, a zero included: a missing bar reads as "not measured", not as "none".
    decision_labels = list(Decision.values)
    decision_counts = [decisions.get(k, 0) for k in decision_labels]
    rate = stats["fraud_rate"]
    return render(
        request,
        "console/dashboard.html",
        {
            "stats": stats,
            "volume_chart": charts.bar_chart(
                "Transactions per day, last 30 days",
                short_days,
                stats["volume"],
                label_every=5,
                x_title="Day (UTC, month-day)",
                y_title="Transactions",
            ),
            "decision_chart": charts.bar_chart(
                "Decisions, last 30 days (log scale)",
                decision_labels,
                decision_counts,
                log=True,
                x_title="Decision",
                y_title="Transactions (log scale)",
            )
            if any(decision_counts)
            else "",
            "unscored": decisions.get("unscored", 0),
            "score_chart": charts.bar_chart(
                "Score distribution, last 30 days (log scale)",
                [f"{i / 10:.1f}" for i in range(10)],
                stats["score_bins"],
                log=True,
                x_title="Fraud score (bin start)",
                y_title="Transactions (log scale)",
            ),
            "rate_chart": charts.line_chart(
                "Confirmed-fraud rate by transaction day: transactions labelled fraud, % of the day's transactions",
                short_days,
                rate,
                fmt="{:.1%}",
                x_title="Transaction day (UTC, month-day)",
                y_title="Labelled fraud (%)",
            )
            if any(r for r in rate)
            else "",
            "rows": [
                (day, n, fraud, None if r is None else 100 * r)
                for day, n, fraud, r in zip(stats["days"], stats["volume"], stats["fraud"], rate, strict=True)
            ],
        },
    )


@analyst_required
def batches(request: HttpRequest) -> HttpResponse:
    """Upload a CSV to score in the background for one API client, and see recent jobs."""
    if request.method == "POST":
        form = BatchUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job = batch_create_from_csv(
                    owner=form.cleaned_data["client"], file=upload.file, filename=upload.name or ""
                )
            except BatchInputError as exc:
                form.add_error("file", str(exc))
            else:
                messages.success(request, f"Batch {job.pk} queued: {job.total} rows.")
                return redirect("console:batch", job_id=job.pk)
    else:
        form = BatchUploadForm()
    jobs = BatchJob.objects.select_related("owner").order_by("-created_at")[:50]
    return render(request, "console/batches.html", {"form": form, "jobs": jobs})


@require_GET
@analyst_required
def batch_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(
        BatchJob.objects.select_related("owner", "model_version").defer("model_version__artifact"), pk=job_id
    )
    errors = BatchItem.objects.filter(job=job, status__gte=400).order_by("row")[:50]
    live = job.status in (BatchStatus.QUEUED, BatchStatus.RUNNING)
    return render(request, "console/batch.html", {"job": job, "errors": errors, "live": live})


@require_GET
@analyst_required
def batch_results(request: HttpRequest, job_id: int) -> StreamingHttpResponse:
    job = get_object_or_404(BatchJob, pk=job_id)
    response = StreamingHttpResponse(batch_result_lines(job), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="batch-{job.pk}-results.csv"'
    return response


@require_GET
@analyst_required
@replica_reads
def drift(request: HttpRequest) -> HttpResponse:
    reports = list(
        DriftReport.objects.select_related("model_version").defer("model_version__artifact").order_by("-day")[:60]
    )
    chronological = list(reversed(reports))
    latest = reports[0] if reports else None
    top = sorted(latest.feature_psi.items(), key=lambda kv: -kv[1])[:10] if latest else []
    chart = (
        charts.line_chart(
            "Score PSI per day",
            [str(r.day)[5:] for r in chronological],
            [r.score_psi for r in chronological],
            fmt="{:.2f}",
        )
        if chronological
        else ""
    )
    return render(request, "console/drift.html", {"reports": reports, "latest": latest, "top": top, "chart": chart})


class BacktestForm(forms.Form):
    rule = forms.ModelChoiceField(
        queryset=Rule.objects.exclude(status=RuleStatus.DISABLED).order_by("name", "-version"),
        required=False,
        help_text="a draft or active rule version, run as if it were live",
    )
    review_threshold = forms.FloatField(required=False, min_value=0, max_value=1)
    decline_threshold = forms.FloatField(required=False, min_value=0, max_value=1)
    start = forms.DateField(help_text="first day (UTC)")
    end = forms.DateField(help_text="last day (UTC), included")

    def clean(self) -> dict:
        data = super().clean()
        earliest, latest = date(2000, 1, 1), timezone.now().date()
        for name in ("start", "end"):
            if data.get(name) and not earliest <= data[name] <= latest:
                self.add_error(name, f"Choose a day from {earliest} to {latest}.")
        return data


@analyst_required
def backtests(request: HttpRequest) -> HttpResponse:
    """Run a rule version or new thresholds over history before they go live, and see past runs."""
    today = timezone.now().date()
    if request.method == "POST":
        form = BacktestForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            start = datetime.combine(data["start"], time.min, tzinfo=UTC)
            end = datetime.combine(data["end"], time.min, tzinfo=UTC) + timedelta(days=1)
            try:
                backtest = backtest_create(actor=request.user, window_start=start, window_end=end, rule=data["rule"],
                                           review=data["review_threshold"], decline=data["decline_threshold"])  # fmt: skip
            except PolicyError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Backtest {backtest.pk} queued.")
                return redirect("console:backtest", backtest_id=backtest.pk)
    else:
        form = BacktestForm(initial={"start": today - timedelta(days=30), "end": today - timedelta(days=1)})
    runs = Backtest.objects.select_related("rule", "created_by")[:50]
    return render(request, "console/backtests.html", {"form": form, "runs": runs})


@require_GET
@analyst_required
def backtest_detail(request: HttpRequest, backtest_id: int) -> HttpResponse:
    backtest = get_object_or_404(Backtest.objects.select_related("rule", "created_by"), pk=backtest_id)
    live = backtest.status in (BacktestStatus.QUEUED, BacktestStatus.RUNNING)
    context: dict = {"backtest": backtest, "live": live, "progress": round(backtest.progress * 100)}
    result = backtest.result
    if result.get("days"):
        days = result["days"]
        labels = [d["day"][5:] for d in days]
        every = max(1, len(days) // 10)
        context["flagged_chart"] = charts.grouped_bar_chart(
            "Transactions flagged per day",
            labels,
            [
                ("current setup", [d["current"]["flagged"] for d in days]),
                ("with the change", [d["candidate"]["flagged"] for d in days]),
            ],  # fmt: skip
            label_every=every,
        )
        context["caught_chart"] = charts.grouped_bar_chart(
            "Confirmed fraud caught per day",
            labels,
            [
                ("current setup", [d["current"]["caught"] for d in days]),
                ("with the change", [d["candidate"]["caught"] for d in days]),
            ],  # fmt: skip
            label_every=every,
        )
        totals = result["totals"]
        context["rows"] = [
            (name, totals["current"][key], totals["candidate"][key], totals["candidate"][key] - totals["current"][key])
            for name, key in (("Transactions flagged", "flagged"), ("Money flagged", "flagged_amount"),
                              ("Confirmed fraud caught", "caught"), ("Fraud money caught", "caught_amount"),
                              ("False positives", "false_positives"), ("Cases for analysts", "cases"))
        ]  # fmt: skip
        context["days"] = days
    return render(request, "console/backtest.html", context)


@require_GET
@analyst_required
def webhooks(request: HttpRequest) -> HttpResponse:
    """Every client's webhook endpoints and how they fare, for admins: API clients have no console
    (the API tells them why an endpoint was disabled); the changes are made in the Django admin."""
    if not request.user.is_staff:
        return render(request, "error.html", {"status": 403, "detail": "Webhooks are for admins."}, status=403)
    context = {"endpoints": webhook_endpoints_health(), "disable_after_hours": settings.WEBHOOK_DISABLE_AFTER_HOURS}
    return render(request, "console/webhooks.html", context)
