"""The benchmark-style simulator (fraud.modelops.simulator): deterministic, and its fraud follows the
published process."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from fraud.features.definitions import DAY
from fraud.modelops.simulator import SCENARIOS, simulate

START = datetime(2026, 1, 1, tzinfo=UTC)


def small(seed: int = 3):
    return simulate(start=START, days=40, customers=500, terminals=1000, seed=seed)


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = small(3), small(3), small(4)
    assert a.ts_us == b.ts_us and a.amount == b.amount and a.scenario == b.scenario
    assert a.amount != c.amount


def test_fraud_follows_the_three_scenarios():
    g = small()
    amount = np.array(g.amount)
    scenario = np.array(g.scenario, dtype=object)
    assert set(scenario[scenario != ""]) == set(SCENARIOS)
    assert (scenario[amount > 220] != "").all()  # every large payment is fraud
    # Compromises are counted per day (2 terminals, 3 customers), so a small population has a
    # higher rate than the 0.8 % of the full-size process.
    assert 0.005 < g.fraud_rate < 0.1
    # Terminal compromise: all of that terminal's payments in the window are fraud, so fraud at a
    # terminal comes in runs.
    merchant = np.array(g.merchant_id)
    hit = merchant[scenario == "compromised_terminal"]
    assert len(hit) > 20 and len(set(hit)) < len(hit)


def test_payments_are_midday_around_each_day_and_labels_known_a_delay_later():
    g = small()
    ts = np.array(g.ts_us)
    assert (np.diff(ts) >= 0).all()
    seconds = (ts % DAY) / 1e6
    assert 30_000 < float(np.median(seconds)) < 56_000
    fraud = np.array(g.scenario, dtype=object) != ""
    labels = np.array(g.label_time_us)
    assert ((labels[fraud] - ts[fraud]) == 7 * DAY).all() and (labels[~fraud] == -1).all()
