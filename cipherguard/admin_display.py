"""Small pieces of HTML for the Django admin's lists and pages, escaped by construction: what
every app's admin uses to keep a list row short and a stored figure readable. The classes are
styled by static/cipherguard/admin.css (linked from templates/admin/base_site.html)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

EMPTY = "—"


class ReadOnlyAdmin:
    """A ModelAdmin mixin for records nobody edits from a form (the audit trail, delivery logs):
    no add, change or delete, whoever asks; their pages show the fields and the actions."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def truncated(text: str | None, limit: int) -> SafeString | str:
    """``text`` cut to ``limit`` characters with an ellipsis; the whole of it in the title
    (shown on hover, read by screen readers) when cut."""
    text = text or ""
    if not text:
        return EMPTY
    if len(text) <= limit:
        return format_html("{}", text)
    return format_html('<span title="{}">{}…</span>', text, text[: limit - 1])


def two_lines(first: str | SafeString, second: str | SafeString | None) -> SafeString:
    """A list cell of two lines, the second quieter (a detail of the first)."""
    if not second:
        return format_html("{}", first)
    return format_html('{}<span class="cg-quiet cg-line">{}</span>', first, second)


def when(moment: datetime | None, *, seconds: bool = False) -> SafeString | str:
    """A moment as date over time (narrow), in the site's time zone, the full ISO form in the
    title."""
    if moment is None:
        return EMPTY
    local = timezone.localtime(moment)
    return format_html(
        '<time class="cg-when" datetime="{}" title="{}">{}<span class="cg-quiet cg-line">{}</span></time>',
        moment.isoformat(),
        local.isoformat(sep=" ", timespec="seconds"),
        f"{local:%Y-%m-%d}",
        f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}",
    )


def figure(value: object) -> str:
    """A stored figure as people read it: counts grouped, fractions to four places, tiny
    numbers (a numerical error) in scientific notation, anything else as it is."""
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:,.4f}"
    return str(value)
