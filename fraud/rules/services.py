"""Allow/block lists, rules and the decision thresholds: every change goes through here, is
validated, audited in the same database transaction, and reaches every scoring process within
``FRAUD_RUNTIME_REFRESH_SECONDS`` (at once in this one: ``policy_changed`` on commit)."""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import Role, User
from audit.services import audit_record
from fraud.models import (
    OWNED_LIST_KINDS,
    Decision,
    DecisionThresholds,
    ListAction,
    ListEntry,
    ListKind,
    Rule,
    RuleStatus,
)
from fraud.rules.expressions import ExpressionError
from fraud.rules.policy import compile_rule
from fraud.rules.selectors import thresholds_row
from fraud.rules.signals import policy_changed
from fraud.transactions.builder import card_vault
from fraud.transactions.cards import InvalidCardNumberError, validate_pan
from fraud.transactions.validation import ID_RE, TimestampError, country_codes, parse_timestamp

# An entry expiring later than this is a typo or an attack on the date type; no expiry is spelled
# by leaving it empty.
MAX_EXPIRY = timedelta(days=5 * 365)


class PolicyError(ValueError):
    """A change that cannot be made, with the field it is about."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        self.message = message
        super().__init__(f"{field_name}: {message}")


def _applies_at_once() -> None:
    """Called on commit: this process's scoring runtime re-reads the lists, rules and thresholds
    now; the others do within their refresh interval."""
    policy_changed.send(sender=None)


def _entry_state(entry: ListEntry) -> dict[str, Any]:
    return {
        "owner": entry.owner.username if entry.owner_id else None,
        "kind": entry.kind,
        "value": entry.display,  # never a card number: the display is "411111…1111"
        "action": entry.action,
        "overriding": entry.overriding,
        "reason": entry.reason,
        "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
        "removed_at": entry.removed_at.isoformat() if entry.removed_at else None,
    }


def _normalised(kind: str, value: str) -> tuple[str, str]:
    """(stored value, display) for a list value, or PolicyError naming ``value``."""
    value = (value or "").strip()
    if kind == ListKind.CARD:
        try:
            pan = validate_pan(value)
        except InvalidCardNumberError:
            raise PolicyError("value", "Not a valid card number.") from None
        return card_vault().fingerprint(pan), f"{pan[:6]}…{pan[-4:]}"
    if kind in (ListKind.CUSTOMER, ListKind.MERCHANT):
        if not ID_RE.fullmatch(value):
            raise PolicyError("value", "Use 1–64 characters: ASCII letters, digits and . _ : -.")
        return value, value
    if kind == ListKind.COUNTRY:
        if value not in country_codes():
            raise PolicyError("value", "Use an ISO 3166-1 alpha-2 country code in capitals, such as FR.")
        return value, value
    if kind == ListKind.IP:
        if "%" in value:  # an IPv6 zone id names an interface of one host, never a range of payers
            raise PolicyError("value", "Use an IP address or a CIDR range, such as 203.0.113.0/24.")
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise PolicyError("value", "Use an IP address or a CIDR range, such as 203.0.113.0/24.") from None
        return str(network), str(network)
    raise PolicyError("kind", f"Use one of {', '.join(ListKind.values)}.")


def list_entry_add(
    *,
    actor: User,
    kind: str,
    value: str,
    action: str,
    reason: str,
    owner: User | None = None,
    overriding: bool = False,
    expires_at: datetime | None = None,
) -> ListEntry:
    stored, display = list_entry_check(
        kind=kind, value=value, action=action, reason=reason, owner=owner, overriding=overriding, expires_at=expires_at
    )
    entry = ListEntry(
        owner=owner if kind in OWNED_LIST_KINDS else None,
        kind=kind,
        value=stored,
        display=display,
        action=action,
        overriding=overriding,
        reason=reason.strip(),
        expires_at=expires_at,
        created_by=actor,
    )
    try:
        with transaction.atomic():
            entry.save()
            audit_record(event_type="list.entry_added", actor=actor, obj=entry, after=_entry_state(entry))
            transaction.on_commit(_applies_at_once)
    except IntegrityError:  # the database's unique constraint decides, even between concurrent adds
        raise _already_listed(display, action) from None
    return entry


def list_entry_check(
    *,
    kind: str,
    value: str,
    action: str,
    reason: str,
    owner: User | None = None,
    overriding: bool = False,
    expires_at: datetime | None = None,
    unique: bool = False,
) -> tuple[str, str]:
    """Every rule an entry must meet (PolicyError naming the field otherwise); the stored value
    and its display. Forms call it to show errors before saving, with ``unique`` to say too that
    the same entry is already live (adding one relies on the unique constraint instead)."""
    if kind not in ListKind.values:
        raise PolicyError("kind", f"Use one of {', '.join(ListKind.values)}.")
    if action not in ListAction.values:
        raise PolicyError("action", "Use allow or block.")
    if overriding and action != ListAction.ALLOW:
        raise PolicyError("overriding", "Only an allow entry can override block entries.")
    if not (reason or "").strip():
        raise PolicyError("reason", "Say why: the reason is shown with every decision the entry makes.")
    stored, display = _normalised(kind, value)
    if kind in OWNED_LIST_KINDS and owner is None:
        raise PolicyError("owner", "Cards, customers and merchants belong to an API client: name it.")
    if owner is not None and owner.role != Role.API_CLIENT:
        raise PolicyError("owner", "Not an API client.")
    if kind not in OWNED_LIST_KINDS and owner is not None:
        raise PolicyError("owner", "Countries and IP ranges apply to every client: leave the owner empty.")
    if expires_at is not None and expires_at <= timezone.now():
        raise PolicyError("expires_at", "Must be in the future.")
    if expires_at is not None and expires_at > timezone.now() + MAX_EXPIRY:
        raise PolicyError("expires_at", f"Must be within {MAX_EXPIRY.days // 365} years; leave it empty for no expiry.")
    if unique:
        live = ListEntry.objects.filter(kind=kind, value=stored, action=action, removed_at__isnull=True)
        if live.filter(owner=owner if kind in OWNED_LIST_KINDS else None).exists():
            raise _already_listed(display, action)
    return stored, display


def _already_listed(display: str, action: str) -> PolicyError:
    return PolicyError("value", f"{display} is already on the {action} list.")


def list_entry_remove(*, actor: User, entry: ListEntry) -> ListEntry:
    with transaction.atomic():
        locked = ListEntry.objects.select_for_update().get(pk=entry.pk)
        if locked.removed_at is not None:
            return locked
        before = _entry_state(locked)
        locked.removed_at = timezone.now()
        locked.removed_by = actor
        locked.save(update_fields=["removed_at", "removed_by"])
        audit_record(
            event_type="list.entry_removed", actor=actor, obj=locked, before=before, after=_entry_state(locked)
        )
        transaction.on_commit(_applies_at_once)
    return locked


@dataclass
class ListImportReport:
    rows: int = 0
    added: int = 0
    bad: list[tuple[int, dict[str, str]]] = field(default_factory=list)


LIST_CSV_COLUMNS = ("kind", "value", "action", "reason", "owner", "overriding", "expires_at")


def list_import_csv(
    *, actor: User, file: IO[bytes], owner: User | None = None, kinds: Sequence[str] | None = None
) -> ListImportReport:
    """Add entries from a CSV (``kind,value,action,reason`` and optionally ``owner`` (a
    username), ``overriding`` (true/false), ``expires_at`` (ISO 8601)). Each row is added
    through ``list_entry_add`` (validated and audited one by one); bad rows are reported by line
    and field, the others kept. With ``owner`` (an API client importing through the API) every
    entry is that client's and only ``kinds`` are accepted."""
    report = ListImportReport()
    try:
        reader = csv.DictReader(io.TextIOWrapper(file, encoding="utf-8-sig", newline=""))
        header = reader.fieldnames or []
        missing = [c for c in LIST_CSV_COLUMNS[:4] if c not in header]
        unknown = [c for c in header if c not in LIST_CSV_COLUMNS]
        if missing or unknown:
            raise PolicyError("file", f"missing columns: {missing}; unknown columns: {unknown}")
        for line, raw in enumerate(reader, start=2):
            report.rows += 1
            try:
                row_owner = owner
                if owner is not None and raw.get("owner") not in (None, "", owner.username):
                    raise PolicyError("owner", "Entries you import are your own: leave owner empty.")
                if owner is None and raw.get("owner"):
                    row_owner = User.objects.filter(username=raw["owner"]).first()
                    if row_owner is None:
                        raise PolicyError("owner", f"No user {raw['owner']!r}.")
                if kinds is not None and (raw.get("kind") or "").strip() not in kinds:
                    raise PolicyError("kind", f"Use one of {', '.join(kinds)}.")
                expires_at = None
                if raw.get("expires_at"):
                    try:
                        expires_at = parse_timestamp(raw["expires_at"])
                    except TimestampError:
                        raise PolicyError(
                            "expires_at", "Use ISO 8601 with an offset, such as 2026-12-31T00:00:00Z."
                        ) from None
                overriding = (raw.get("overriding") or "false").strip().lower()
                if overriding not in ("true", "false", "1", "0", "yes", "no"):
                    raise PolicyError("overriding", "Use true or false.")
                list_entry_add(
                    actor=actor,
                    kind=(raw.get("kind") or "").strip(),
                    value=raw.get("value") or "",
                    action=(raw.get("action") or "").strip(),
                    reason=raw.get("reason") or "",
                    owner=row_owner,
                    overriding=overriding in ("true", "1", "yes"),
                    expires_at=expires_at,
                )
                report.added += 1
            except PolicyError as exc:
                report.bad.append((line, {exc.field: exc.message}))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PolicyError("file", f"not a UTF-8 CSV file: {exc}") from None
    return report


# --- Rules ------------------------------------------------------------------------------------------


def _rule_state(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "version": rule.version,
        "condition": rule.condition,
        "action": rule.action,
        "priority": rule.priority,
        "shadow": rule.shadow,
        "status": rule.status,
    }


def rule_check(*, name: str, condition: str, action: str, priority: object) -> None:
    """Every rule a rule version must meet (PolicyError naming the field otherwise). Forms call it
    to show errors before saving."""
    if not name or len(name) > 100:
        raise PolicyError("name", "Give the rule a name of 1–100 characters.")
    if action not in Decision.values:
        raise PolicyError("action", "Use approve, review or decline.")
    if not isinstance(priority, int) or isinstance(priority, bool) or not -1000 <= priority <= 1000:
        raise PolicyError("priority", "Use a whole number from -1000 to 1000.")
    try:
        compile_rule(condition)
    except ExpressionError as exc:
        raise PolicyError("condition", str(exc)) from None


def rule_save(
    *,
    actor: User,
    name: str,
    condition: str,
    action: str,
    priority: int = 0,
    shadow: bool = False,
    description: str = "",
) -> Rule:
    """A new draft version of rule ``name`` (version 1 for a new name). The condition is parsed
    and checked now, so a rule that cannot run is never stored; the error says where."""
    name = (name or "").strip()
    rule_check(name=name, condition=condition, action=action, priority=priority)
    with transaction.atomic():
        # Concurrent saves of one name race for the next version; the unique (name, version)
        # constraint lets one win and the other retry.
        for _ in range(20):
            latest = Rule.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0
            rule = Rule(
                name=name,
                version=latest + 1,
                description=description,
                condition=condition,
                action=action,
                priority=priority,
                shadow=shadow,
                created_by=actor,
            )
            try:
                with transaction.atomic():
                    rule.save()
                break
            except IntegrityError:
                continue
        else:
            raise PolicyError("name", "Someone else is saving this rule; try again.")
        audit_record(event_type="rule.saved", actor=actor, obj=rule, after=_rule_state(rule))
    return rule


def rule_activate(*, actor: User, rule: Rule) -> Rule:
    """Make this version the live one (admins only); the name's previous active version is
    disabled in the same transaction."""
    if actor.role != Role.ADMIN:
        raise PolicyError("status", "Only an admin can activate a rule.")
    with transaction.atomic():
        versions = list(Rule.objects.select_for_update().filter(name=rule.name).order_by("version"))
        target = next(v for v in versions if v.pk == rule.pk)
        if target.status == RuleStatus.ACTIVE:
            return target
        previous = [v for v in versions if v.status == RuleStatus.ACTIVE]
        for old in previous:
            old.status = RuleStatus.DISABLED
            old.save(update_fields=["status"])
        before = _rule_state(target)
        target.status = RuleStatus.ACTIVE
        target.activated_by = actor
        target.activated_at = timezone.now()
        target.save(update_fields=["status", "activated_by", "activated_at"])
        audit_record(
            event_type="rule.activated",
            actor=actor,
            obj=target,
            before={**before, "replaced": [f"v{v.version}" for v in previous]},
            after=_rule_state(target),
        )
        transaction.on_commit(_applies_at_once)
    return target


def rule_disable(*, actor: User, rule: Rule) -> Rule:
    with transaction.atomic():
        locked = Rule.objects.select_for_update().get(pk=rule.pk)
        if locked.status == RuleStatus.DISABLED:
            return locked
        before = _rule_state(locked)
        locked.status = RuleStatus.DISABLED
        locked.save(update_fields=["status"])
        audit_record(event_type="rule.disabled", actor=actor, obj=locked, before=before, after=_rule_state(locked))
        transaction.on_commit(_applies_at_once)
    return locked


# --- Thresholds -------------------------------------------------------------------------------------


def thresholds_check(*, review: float, decline: float) -> None:
    """What a pair of thresholds must meet (PolicyError otherwise), as the table's constraint
    does: a backtest's candidate pair is checked here too. The sentences are the model's, so the
    admin's form (which the model validates) says the same."""
    problems = DecisionThresholds.problems(review=review, decline=decline)
    if problems:
        field_name, message = next(iter(problems.items()))
        raise PolicyError(field_name, message)


def thresholds_update(*, review: float, decline: float, actor: User | None = None) -> DecisionThresholds:
    """Change the decision thresholds (audited); every web process applies them within its
    refresh interval, this one at once."""
    thresholds_check(review=review, decline=decline)
    with transaction.atomic():
        row = DecisionThresholds.objects.select_for_update().get(pk=thresholds_row().pk)
        before = {"review": row.review_threshold, "decline": row.decline_threshold}
        row.review_threshold = review
        row.decline_threshold = decline
        row.updated_by = actor
        row.save(update_fields=["review_threshold", "decline_threshold", "updated_by", "updated_at"])
        audit_record(
            event_type="thresholds.changed",
            actor=actor,
            obj=row,
            before=before,
            after={"review": review, "decline": decline},
        )
        transaction.on_commit(_applies_at_once)
    return row
