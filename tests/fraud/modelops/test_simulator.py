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


def test_the_default_process_is_the_published_one_and_the_family_moves_it():
    from dataclasses import asdict

    from fraud.modelops.simulator import BENCHMARK, FAMILY, HELD_OUT, Process

    assert (BENCHMARK.terminals_per_day, BENCHMARK.terminal_days, BENCHMARK.customers_per_day) == (2, 28, 3)
    assert (BENCHMARK.customer_days, BENCHMARK.customer_multiplier, BENCHMARK.radius) == (14, 5.0, 5.0)
    assert FAMILY["benchmark"] == Process()
    changed = [name for name, p in {**FAMILY, **HELD_OUT}.items() if asdict(p) != asdict(BENCHMARK)]
    assert len(changed) == len(FAMILY) + len(HELD_OUT) - 1  # every other member moves something
    assert not set(FAMILY) & set(HELD_OUT)


def test_a_process_with_more_compromised_terminals_has_more_terminal_fraud():
    from dataclasses import replace

    from fraud.modelops.simulator import BENCHMARK

    def terminal_fraud(process) -> int:
        g = simulate(start=START, days=30, customers=500, terminals=1000, seed=3, process=process)
        return sum(1 for s in g.scenario if s == "compromised_terminal")

    assert terminal_fraud(replace(BENCHMARK, terminals_per_day=8)) > 2 * terminal_fraud(BENCHMARK)
