"""Sent, on commit, after a change to the lists, the rules or the thresholds: every process
re-reads them within ``FRAUD_RUNTIME_REFRESH_SECONDS``, and the scoring runtime of the process
that made the change listens to re-read them at once (``fraud.scoring.runtime``). A signal,
because scoring depends on the rules and not the other way round."""

from __future__ import annotations

from django.dispatch import Signal

policy_changed = Signal()
