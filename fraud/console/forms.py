from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.models import Role, User
from accounts.services import auth_attempt_record
from fraud.cases.selectors import QUEUE_SORTS, QueueFilters, console_analysts, user_can_use_console
from fraud.cases.services import CASE_GROUP_MAX
from fraud.models import CaseOutcome, CaseStatus

SORT_CHOICES = [
    ("-priority", "Priority"),
    ("-score", "Score (high first)"),
    ("score", "Score (low first)"),
    ("-amount", "Amount (high first)"),
    ("amount", "Amount (low first)"),
    ("opened", "Age (oldest first)"),
    ("-opened", "Age (newest first)"),
    ("due", "Due time (soonest first)"),
]
assert {value for value, _ in SORT_CHOICES} == set(QUEUE_SORTS)  # noqa: S101 - a definition-time consistency check


class QueueFilterForm(forms.Form):
    status = forms.MultipleChoiceField(choices=CaseStatus.choices, required=False, widget=forms.CheckboxSelectMultiple)
    assignee = forms.CharField(required=False, max_length=20)
    score_min = forms.FloatField(required=False, min_value=0, max_value=1, label="Score from")
    score_max = forms.FloatField(required=False, min_value=0, max_value=1, label="to")
    amount_min = forms.DecimalField(required=False, min_value=0, max_digits=18, decimal_places=4, label="Amount from")
    amount_max = forms.DecimalField(required=False, min_value=0, max_digits=18, decimal_places=4, label="to")
    older_than_hours = forms.IntegerField(required=False, min_value=0, max_value=24 * 365, label="Older than (hours)")
    overdue = forms.BooleanField(required=False, label="Overdue only")
    sort = forms.ChoiceField(choices=SORT_CHOICES, required=False)

    def clean_assignee(self) -> str:
        value = self.cleaned_data["assignee"]
        if value in {"", "me", "unassigned"} or (value.isascii() and value.isdigit()):
            return value
        raise forms.ValidationError("Choose me, unassigned or an analyst.")

    def filters(self) -> QueueFilters:
        d = self.cleaned_data
        defaults = QueueFilters()
        return QueueFilters(
            statuses=d.get("status") or defaults.statuses,
            assignee=d.get("assignee") or "",
            score_min=d.get("score_min"),
            score_max=d.get("score_max"),
            amount_min=d.get("amount_min"),
            amount_max=d.get("amount_max"),
            older_than_hours=d.get("older_than_hours"),
            overdue=bool(d.get("overdue")),
            sort=d.get("sort") or defaults.sort,
        )


class AnalystChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return obj.get_username()


class AssignForm(forms.Form):
    assignee = AnalystChoiceField(queryset=console_analysts(), empty_label=None)

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["assignee"].queryset = console_analysts()  # type: ignore[attr-defined]


class NoteForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000, label="Note")


class EscalateForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5000, required=False)


class CloseForm(forms.Form):
    outcome = forms.ChoiceField(choices=CaseOutcome.choices, widget=forms.RadioSelect)
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5000, required=False)


class GroupCloseForm(CloseForm):
    """The case's close form with the related cases ticked to close with it (``related``, ids)."""

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        raw = self.data.getlist("related") if hasattr(self.data, "getlist") else []
        self.bad_ids = [v for v in raw if not (v.isascii() and v.isdigit() and len(v) < 19)]
        self.related_ids = [int(v) for v in raw if v not in self.bad_ids]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if self.bad_ids:
            raise forms.ValidationError("Related cases are chosen by their number.")
        if not self.related_ids:
            raise forms.ValidationError("Tick at least one related case to close with this one.")
        if len(self.related_ids) > CASE_GROUP_MAX:
            raise forms.ValidationError(f"At most {CASE_GROUP_MAX} related cases can be closed at once.")
        return data


class BulkForm(forms.Form):
    ACTIONS = [("assign", "Assign to"), ("close", "Close as")]
    MAX_CASES = 200
    action = forms.ChoiceField(choices=ACTIONS)
    assignee = AnalystChoiceField(queryset=console_analysts(), required=False)
    outcome = forms.ChoiceField(choices=[("", "—"), *CaseOutcome.choices], required=False)

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["assignee"].queryset = console_analysts()  # type: ignore[attr-defined]
        raw = self.data.getlist("cases") if hasattr(self.data, "getlist") else []
        self.case_ids = [int(v) for v in raw if v.isascii() and v.isdigit()][: self.MAX_CASES]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if not self.case_ids:
            raise forms.ValidationError("Select at least one case.")
        if data.get("action") == "assign" and not data.get("assignee"):
            self.add_error("assignee", "Choose who gets the cases.")
        if data.get("action") == "close" and not data.get("outcome"):
            self.add_error("outcome", "Choose an outcome.")
        return data


class ConsoleLoginForm(AuthenticationForm):
    """Django's login form, closed to API-client accounts: they are machines and use tokens."""

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not user_can_use_console(user):
            auth_attempt_record(user=user, username=user.get_username(), success=False, channel="login")
            raise forms.ValidationError("This account cannot use the console.", code="no_console")


class BatchUploadForm(forms.Form):
    client = forms.ModelChoiceField(queryset=User.objects.none(), label="For API client")
    file = forms.FileField(label="CSV file")

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["client"].queryset = User.objects.filter(role=Role.API_CLIENT, is_active=True).order_by("username")  # type: ignore[attr-defined]
