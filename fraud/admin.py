"""The fraud app's Django admin, one module per job. Django's admin autodiscovery imports this
module; importing the jobs' modules registers their model admins."""

from __future__ import annotations

from fraud.modelops import admin as modelops_admin
from fraud.rules import admin as rules_admin
from fraud.transactions import admin as transactions_admin
from fraud.webhooks import admin as webhooks_admin

__all__ = ["modelops_admin", "rules_admin", "transactions_admin", "webhooks_admin"]
