"""Permission-checked reads of transactions: an API client only ever reaches its own."""

from __future__ import annotations

from datetime import datetime

from django.http import Http404

from accounts.models import User
from fraud.models import Transaction, TransactionQuerySet


def transaction_list_for_client(
    *,
    client: User,
    decision: str | None = None,
    customer_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> TransactionQuerySet:
    qs = Transaction.objects.owned_by(client.pk).with_model_version()
    if decision:
        qs = qs.filter(decision=decision)
    if customer_id:
        qs = qs.for_customer(customer_id)
    if since:
        qs = qs.filter(timestamp__gte=since)
    if until:
        qs = qs.filter(timestamp__lt=until)
    return qs


def transaction_get_for_client(*, client: User, transaction_id: str) -> Transaction:
    """The client's transaction, or 404 — also when it exists but belongs to someone else, so a
    client cannot even learn that another client's id exists."""
    tx = Transaction.objects.owned_by(client.pk).with_model_version().filter(transaction_id=transaction_id).first()
    if tx is None:
        raise Http404("No such transaction.")
    return tx
