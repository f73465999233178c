"""Django admin for model versions: activation and rollback, shadow scoring, and the figures to
decide with. Models come from training, never from a form; what training stored (the
``metrics``, ``feature_names``, ``neutral_values`` and ``calibration`` JSON) is shown as tables
and lists, never as raw JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from cipherguard.admin_display import EMPTY, figure, two_lines, when
from fraud.features.definitions import REASON_GROUPS
from fraud.modelops import selectors
from fraud.modelops.services.lifecycle import model_version_activate, model_version_set_shadow
from fraud.models import ModelStatus, ModelVersion

# The columns of the figures table: the parts of ``metrics`` that ``model_train`` fills with
# ``training.binary_metrics``, in reading order. Any other part holding figures gets a column too,
# under its key, so a figure training learns to store later still shows.
FIGURE_COLUMNS = {
    "validation": "Validation window (held back)",
    "train": "Training window",
    "active_on_same_window": "Active model, same validation rows",
}
FIGURE_ROWS = {
    "auc_roc": "AUC ROC",
    "average_precision": "Average precision",
    "n": "Transactions",
    "n_fraud": "Confirmed fraud",
}
# Parts of ``metrics`` shown elsewhere on the page (calibration), or too large to show (the drift
# reference: decile edges of every feature).
NOT_FIGURE_COLUMNS = {"calibration", "reference"}
CALIBRATION_ROWS = {
    "brier": "Brier score (lower is better)",
    "ece": "Expected calibration error",
    "mean_score": "Mean score",
    "fraud_rate": "Observed fraud rate",
}
CALIBRATION_PERCENTAGES = {"mean_score", "fraud_rate"}  # a score is a probability once calibrated
OTHER_FIGURES = {
    "onnx_max_abs_diff": "Largest difference between the ONNX export and scikit-learn",
    "label_delay_days": "Label delay assumed (days)",
    "seed": "Training seed",
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _figure_cell(value: object) -> SafeString:
    """A number formatted by ``figure``; a string as it is (already worded, a percentage)."""
    shown = figure(value) if _is_number(value) else value if isinstance(value, str) else EMPTY
    return format_html('<td class="cg-num">{}</td>', shown)


def _percent(value: object) -> str | None:
    return f"{value:.2%}" if _is_number(value) else None


def _table(head: SafeString | None, rows: list[tuple[str, list[object]]]) -> SafeString:
    body = format_html_join(
        "",
        '<tr><th scope="row">{}</th>{}</tr>',
        ((label, format_html_join("", "{}", ((_figure_cell(v),) for v in values))) for label, values in rows),
    )
    if head is None:
        return format_html('<table class="cg-figures"><tbody>{}</tbody></table>', body)
    return format_html('<table class="cg-figures"><thead>{}</thead><tbody>{}</tbody></table>', head, body)


def _day_span(start: datetime, end: datetime) -> str:
    return f"{timezone.localtime(start):%Y-%m-%d} → {timezone.localtime(end):%Y-%m-%d} ({(end - start).days} days)"


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    # Short columns, so the list fits a laptop's width beside the admin's sidebars; the rest is on
    # each version's page.
    list_display = (
        "version",
        "state",
        "validation_auc",
        "validation_ap",
        "active_ap_same_window",
        "trained",
        "went_live",
    )
    list_filter = ("status", "shadow", "algorithm")
    search_fields = ("version",)
    actions = ["activate", "start_shadow", "stop_shadow"]
    fieldsets = (
        (None, {"fields": ("version", "state", "algorithm", "feature_set_version", "artifact_sha256")}),
        ("Life", {"fields": ("created_at", "activated_at", "retired_at")}),
        (
            "How well it did",
            {"fields": ("windows", "figures_table", "calibration_table", "other_figures")},
        ),
        ("What it reads", {"fields": ("reason_codes", "inputs")}),
        ("Shadow scores beside the live model", {"fields": ("shadow_comparison",)}),
    )
    readonly_fields = (
        "version",
        "state",
        "algorithm",
        "feature_set_version",
        "artifact_sha256",
        "created_at",
        "activated_at",
        "retired_at",
        "windows",
        "figures_table",
        "calibration_table",
        "other_figures",
        "reason_codes",
        "inputs",
        "shadow_comparison",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelVersion]:
        # The ONNX artifact (megabytes) is for the scoring runtime; no admin page shows it.
        return super().get_queryset(request).defer("artifact")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # models come from training, never from a form

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The list and its actions only: a version's page has nothing to edit, so it shows no
        # Save buttons.
        return obj is None and super().has_change_permission(request)

    # --- The list ---------------------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def state(self, obj: ModelVersion) -> SafeString:
        return two_lines(obj.get_status_display(), "in shadow" if obj.shadow else None)

    @admin.display(description="AUC ROC")
    def validation_auc(self, obj: ModelVersion) -> str:
        return figure(self._part(obj, "validation").get("auc_roc"))

    @admin.display(description="AP")
    def validation_ap(self, obj: ModelVersion) -> str:
        return figure(self._part(obj, "validation").get("average_precision"))

    @admin.display(description="Active's AP")
    def active_ap_same_window(self, obj: ModelVersion) -> SafeString | str:
        champion = self._part(obj, "active_on_same_window")
        value = champion.get("average_precision")
        if not _is_number(value):
            return EMPTY
        title = f"Average precision of the active model ({champion.get('version', '?')}) on the same validation rows"
        return format_html('<span title="{}">{}</span>', title, figure(value))

    @admin.display(description="Trained", ordering="created_at")
    def trained(self, obj: ModelVersion) -> SafeString | str:
        return when(obj.created_at)

    @admin.display(description="Went live", ordering="activated_at")
    def went_live(self, obj: ModelVersion) -> SafeString | str:
        return when(obj.activated_at)

    # --- The page ---------------------------------------------------------------------------

    @staticmethod
    def _part(obj: ModelVersion, key: str) -> Mapping[str, Any]:
        metrics = obj.metrics if isinstance(obj.metrics, dict) else {}
        part = metrics.get(key)
        return part if isinstance(part, dict) else {}

    @admin.display(description="Windows")
    def windows(self, obj: ModelVersion) -> SafeString:
        return format_html(
            "Trained on {}<br>validated on {}",
            _day_span(obj.train_start, obj.train_end),
            _day_span(obj.validation_start, obj.validation_end),
        )

    @admin.display(description="Figures")
    def figures_table(self, obj: ModelVersion) -> SafeString | str:
        metrics = obj.metrics if isinstance(obj.metrics, dict) else {}
        keys = [k for k in FIGURE_COLUMNS if k in metrics] + [
            k
            for k, part in metrics.items()
            if k not in FIGURE_COLUMNS
            and k not in NOT_FIGURE_COLUMNS
            and isinstance(part, dict)
            and any(_is_number(v) for v in part.values())
        ]
        parts = [self._part(obj, k) for k in keys]
        if not parts:
            return "No figures stored for this model."
        names = [n for n in FIGURE_ROWS if any(n in p for p in parts)]
        names += sorted({n for p in parts for n, v in p.items() if n not in FIGURE_ROWS and _is_number(v)})
        rows: list[tuple[str, list[object]]] = [
            (FIGURE_ROWS.get(n, n.replace("_", " ").capitalize()), [p.get(n) for p in parts]) for n in names
        ]
        if "n" in names and "n_fraud" in names:
            rows.append(("Fraud rate", [_percent(self._rate(p)) for p in parts]))
        head = format_html(
            '<tr><th scope="col">Figure</th>{}</tr>',
            format_html_join(
                "",
                '<th scope="col">{}</th>',
                (
                    (two_lines(FIGURE_COLUMNS.get(k, k.replace("_", " ").capitalize()), p.get("version")),)
                    for k, p in zip(keys, parts, strict=True)
                ),
            ),
        )
        return format_html('<div class="cg-block">{}</div>', _table(head, rows))

    @staticmethod
    def _rate(part: Mapping[str, Any]) -> float | None:
        n, fraud = part.get("n"), part.get("n_fraud")
        return fraud / n if _is_number(n) and _is_number(fraud) and n else None

    @admin.display(description="Calibration")
    def calibration_table(self, obj: ModelVersion) -> SafeString:
        stored = self._part(obj, "calibration")
        before, after = stored.get("before"), stored.get("after")
        fitted = obj.calibration if isinstance(obj.calibration, dict) else {}
        if fitted.get("a") is not None:
            note = format_html(
                "Fitted on the validation window ({} transactions, {} fraud): slope {}, intercept {} on the "
                "score's log-odds.",
                figure(fitted.get("n")),
                figure(fitted.get("n_fraud")),
                figure(fitted.get("a")),
                figure(fitted.get("b")),
            )
        else:
            note = format_html("{}", "None fitted: scores are the model's own output.")
        if not isinstance(before, dict) or not isinstance(after, dict):
            return format_html('<p class="cg-note">{}</p>', note)
        head = format_html(
            '<tr><th scope="col">Figure</th><th scope="col">{}</th><th scope="col">{}</th></tr>',
            "Before calibration",
            "After",
        )
        rows: list[tuple[str, list[object]]] = [
            (label, [_percent(v) if key in CALIBRATION_PERCENTAGES else v for v in (before.get(key), after.get(key))])
            for key, label in CALIBRATION_ROWS.items()
            if key in before or key in after
        ]
        return format_html('<div class="cg-block">{}<p class="cg-note">{}</p></div>', _table(head, rows), note)

    @admin.display(description="Checks")
    def other_figures(self, obj: ModelVersion) -> SafeString | str:
        metrics = obj.metrics if isinstance(obj.metrics, dict) else {}
        rows = [(label, [metrics[key]]) for key, label in OTHER_FIGURES.items() if key in metrics]
        rows += [
            (key.replace("_", " ").capitalize(), [value])
            for key, value in metrics.items()
            if key not in OTHER_FIGURES and _is_number(value)
        ]
        reference = self._part(obj, "reference")
        if not rows and not reference:
            return EMPTY
        table = _table(None, rows) if rows else ""
        note = ""
        if reference:
            note = format_html(
                '<p class="cg-note">Drift is measured against the training rows\' score and {} inputs.</p>',
                len(reference.get("features") or {}),
            )
        return format_html('<div class="cg-block">{}{}</div>', table, note)

    @admin.display(description="Reason codes")
    def reason_codes(self, obj: ModelVersion) -> SafeString:
        names = [str(n) for n in obj.feature_names] if isinstance(obj.feature_names, list) else []
        reads = set(names)
        groups = [(g.code, ", ".join(f for f in g.features if f in reads)) for g in REASON_GROUPS]
        groups = [(code, features) for code, features in groups if features]
        unexplained = [n for n in names if not any(n in g.features for g in REASON_GROUPS)]
        items = format_html_join("", '<li><code>{}</code> <span class="cg-quiet">{}</span></li>', groups)
        note = ""
        if unexplained:
            note = format_html(
                '<p class="cg-note">Read, but never given as a reason on their own: {}.</p>', ", ".join(unexplained)
            )
        return format_html(
            '<div class="cg-block"><p class="cg-note">What a score of this model can be explained by, and '
            'the inputs each covers.</p><ul class="cg-list">{}</ul>{}</div>',
            items,
            note,
        )

    @admin.display(description="Inputs")
    def inputs(self, obj: ModelVersion) -> SafeString:
        names = [str(n) for n in obj.feature_names] if isinstance(obj.feature_names, list) else []
        ordinary = obj.neutral_values if isinstance(obj.neutral_values, list) else []
        items = format_html_join(
            "",
            '<li><code>{}</code> <span class="cg-quiet">{}</span></li>',
            ((name, figure(ordinary[i]) if i < len(ordinary) else EMPTY) for i, name in enumerate(names)),
        )
        return format_html(
            '<div class="cg-block"><p class="cg-note">{} inputs, in the order the model reads them; beside '
            "each, its ordinary value (the training median), which an explanation sets a group to.</p>"
            '<ul class="cg-list cg-columns">{}</ul></div>',
            len(names),
            items,
        )

    @admin.display(description="Comparison")
    def shadow_comparison(self, obj: ModelVersion) -> str:
        return render_to_string("admin/fraud/shadow_comparison.html", selectors.shadow_comparison(version_id=obj.pk))

    # --- Actions ----------------------------------------------------------------------------

    @admin.action(description="Run the selected model in shadow (scores stored, never used)")
    def start_shadow(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model.", messages.ERROR)
            return
        try:
            version = model_version_set_shadow(version=queryset.get(), on=True, actor=request.user)
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version.version} now scores live traffic in shadow.", messages.SUCCESS)

    @admin.action(description="Stop shadow scoring")
    def stop_shadow(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for version in queryset.filter(shadow=True):
            model_version_set_shadow(version=version, on=False, actor=request.user)
        self.message_user(request, "Shadow scoring stopped.", messages.SUCCESS)

    @admin.action(description="Activate, or roll back to, the selected model (retires the current one)")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model to activate.", messages.ERROR)
            return
        version = queryset.get()
        if version.status == ModelStatus.ACTIVE:
            self.message_user(request, f"{version.version} is already active.", messages.WARNING)
            return
        model_version_activate(version=version, actor=request.user)
        self.message_user(request, f"{version.version} is now the active model.", messages.SUCCESS)
