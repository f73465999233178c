"""Lists, rules and thresholds beside the model: what they match for one transaction and what
decides.

No database access here (and no Django import): ``fraud.rules.selectors.load_policy`` reads the
live entries and rules into a ``Policy``, which the scoring runtime keeps; scoring calls
``Policy.decide`` with the transaction's fields, features and score.

Precedence (documented in docs/rules.md, tested in tests/fraud/test_policy.py):
1. an allow entry marked *overriding* approves;
2. otherwise a block entry declines;
3. otherwise an allow entry approves;
4. otherwise the live rules that match, highest priority first (at equal priority the most
   severe action), decide with their action;
5. otherwise the model's score against the thresholds.
Shadow rules are evaluated and reported (``shadow: true``) but never decide.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fraud.features import definitions as fx
from fraud.rules.expressions import BOOL, NUMBER, STRING, STRINGS, Compiled, compile_expression

# Readable names for the merchant risk features, as analysts write them.
ALIASES = {f"merchant_fraud_rate_{w}": f"m_risk_{w}" for w in fx.MERCHANT_RISK_WINDOWS}

# What a rule condition may read. Every model feature is a number under its own name.
RULE_FIELDS: dict[str, str] = {
    "amount": NUMBER,
    "currency": STRING,
    "country": STRING,
    "channel": STRING,
    "customer_id": STRING,
    "merchant_id": STRING,
    "hour": NUMBER,  # UTC hour of the transaction's time, 0–23
    "has_card": BOOL,
    "score": NUMBER,
    "customer_countries_30d": STRINGS,  # countries of the customer's payments in the 30 days before
    **{name: NUMBER for name in fx.FEATURE_NAMES if name not in ("has_card",)},
    **dict.fromkeys(ALIASES, NUMBER),
}

SEVERITY = {"approve": 0, "review": 1, "decline": 2}


@dataclass(frozen=True)
class Thresholds:
    """The model's decision: a score at or above ``decline`` declines, at or above ``review``
    goes to review, anything lower is approved."""

    review: float
    decline: float

    def decide(self, score: float) -> str:
        if score >= self.decline:
            return "decline"
        if score >= self.review:
            return "review"
        return "approve"


def rule_context(
    *,
    features: Sequence[float],
    amount: float,
    currency: str,
    country: str,
    channel: str,
    customer_id: str,
    merchant_id: str,
    timestamp: datetime,
    has_card: bool,
    score: float,
) -> dict[str, Any]:
    """The values a rule reads for one transaction (``RULE_FIELDS`` but the customer's countries,
    which cost a query and are added only when a rule reads them). Scoring and backtests both
    build it here, so a rule sees the same thing in both."""
    context: dict[str, Any] = {name: float(features[i]) for i, name in enumerate(fx.FEATURE_NAMES)}
    context |= {alias: context[name] for alias, name in ALIASES.items()}
    context |= {
        "amount": float(amount),
        "currency": currency,
        "country": country,
        "channel": channel,
        "customer_id": customer_id,
        "merchant_id": merchant_id,
        "hour": float(timestamp.astimezone(UTC).hour),
        "has_card": has_card,
        "score": float(score),
    }
    return context


def compile_rule(condition: str) -> Compiled:
    """The condition compiled against ``RULE_FIELDS`` (raises ``ExpressionError``)."""
    return compile_expression(condition, RULE_FIELDS)


@dataclass(frozen=True)
class LiveEntry:
    id: int
    owner_id: int | None
    kind: str
    value: str
    display: str
    action: str
    overriding: bool
    expires_at: datetime | None


@dataclass(frozen=True)
class LiveRule:
    id: int
    name: str
    version: int
    action: str
    priority: int
    shadow: bool
    compiled: Compiled


@dataclass(frozen=True)
class Match:
    kind: str  # "list" or "rule"
    id: int
    name: str
    action: str
    shadow: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "action": self.action, "shadow": self.shadow}


@dataclass(frozen=True)
class Outcome:
    decision: str
    decided_by: str  # "list", "rule" or "model"
    matches: list[Match] = field(default_factory=list)


def entry_name(entry: LiveEntry) -> str:
    return f"{entry.action} {entry.kind} {entry.display}" + (" (overriding)" if entry.overriding else "")


class Policy:
    def __init__(self, entries: Iterable[LiveEntry] = (), rules: Iterable[LiveRule] = ()):
        self.entries: Sequence[LiveEntry] = list(entries)
        self._exact: dict[tuple[int | None, str, str], list[LiveEntry]] = {}
        self._networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, LiveEntry]] = []
        for entry in self.entries:
            if entry.kind == "ip":
                self._networks.append((ipaddress.ip_network(entry.value), entry))
            else:
                self._exact.setdefault((entry.owner_id, entry.kind, entry.value), []).append(entry)
        # Highest priority first; at equal priority the most severe action first, then by id.
        self.rules: Sequence[LiveRule] = sorted(rules, key=lambda r: (-r.priority, -SEVERITY[r.action], r.id))
        self.fields_needed = frozenset(f for rule in self.rules for f in rule.compiled.fields)

    @property
    def empty(self) -> bool:
        return not self._exact and not self._networks and not self.rules

    def list_matches(self, *, owner_id: int, values: Mapping[str, str], ip: str, now: datetime) -> list[LiveEntry]:
        found: list[LiveEntry] = []
        for kind, value in values.items():
            if not value:
                continue
            for owner in (owner_id, None):
                found += self._exact.get((owner, kind, value), ())
        if ip and self._networks:
            address = ipaddress.ip_address(ip)
            found += [entry for network, entry in self._networks if address in network]
        live = [e for e in found if (e.owner_id in (None, owner_id)) and (e.expires_at is None or e.expires_at > now)]
        return sorted(live, key=lambda e: e.id)

    def decide(
        self,
        *,
        owner_id: int,
        list_values: Mapping[str, str],
        ip: str,
        context: Mapping[str, Any],
        model_decision: str,
        now: datetime,
    ) -> Outcome:
        entries = self.list_matches(owner_id=owner_id, values=list_values, ip=ip, now=now)
        matches = [Match("list", e.id, entry_name(e), "approve" if e.action == "allow" else "decline") for e in entries]
        fired = [rule for rule in self.rules if rule.compiled.evaluate(context)]
        matches += [Match("rule", r.id, f"{r.name} v{r.version}", r.action, shadow=r.shadow) for r in fired]
        overriding = [e for e in entries if e.action == "allow" and e.overriding]
        if overriding:
            return Outcome("approve", "list", matches)
        if any(e.action == "block" for e in entries):
            return Outcome("decline", "list", matches)
        if entries:
            return Outcome("approve", "list", matches)
        live = [r for r in fired if not r.shadow]
        if live:
            return Outcome(live[0].action, "rule", matches)
        return Outcome(model_decision, "model", matches)
