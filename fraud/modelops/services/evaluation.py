"""Running the temporal protocol on stored history (``manage.py evaluate_model``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from accounts.models import User
from fraud.features import definitions as fx
from fraud.features.store import load_history
from fraud.modelops import training
from fraud.modelops.datasets import frame_from_generated
from fraud.modelops.generator import generate
from fraud.modelops.protocol import (
    Protocol,
    calibration_metrics,
    card_precision_at_k,
    not_known_compromised,
    ranking_metrics,
)
from fraud.modelops.simulator import Process, simulate
from fraud.models import ModelVersion, Transaction
from fraud.scoring.runtime import load_model
from fraud.scoring.scorer import calibrate

# The calibration week comes right before the training window (``evaluate_frame``).
CALIBRATION_DAYS = 7


def history_days_needed(protocol: Protocol) -> int:
    """Days of history before the training window that the protocol's features read: the
    calibration week before it, and the longest feature window (merchant risk: 30 days, shifted
    back by the label delay) before each of that week's rows."""
    longest = max(
        *fx.CUSTOMER_COUNT_WINDOWS.values(), *fx.MERCHANT_WINDOWS.values(), *fx.MERCHANT_RISK_WINDOWS.values()
    )
    return CALIBRATION_DAYS + -(-longest // fx.DAY) + protocol.delay_days


def model_evaluate(
    *, protocol: Protocol, version: ModelVersion | None = None, seed: int = 0, owner: User | None = None
) -> dict[str, Any]:
    """Train on the protocol's training window (or take a stored ``version``), score the test
    window, and report AUC ROC, Average Precision and Card Precision@k. Features use the
    protocol's delay: merchant risk only counts labels of transactions older than it."""
    history_from = protocol.train_start - timedelta(days=history_days_needed(protocol))
    history = Transaction.objects.filter(timestamp__gte=history_from, timestamp__lt=protocol.test_end)
    if owner is not None:
        history = history.filter(owner=owner)
    frame, _ = load_history(history)
    if len(frame) == 0:
        raise ValueError("no transactions in the protocol's windows")
    if version is None:
        return evaluate_frame(frame, protocol, seed=seed)
    return evaluate_frame(frame, protocol, scorer=load_model(version).scorer.predict, name=version.version)


def windows(frame: fx.Frame, protocol: Protocol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training and test rows of ``frame``, and the training labels as they are known when
    testing starts (test labels are read in full)."""
    us = fx.to_epoch_us
    train = (frame.ts >= us(protocol.train_start)) & (frame.ts < us(protocol.train_end))
    test = (frame.ts >= us(protocol.test_start)) & (frame.ts < us(protocol.test_end))
    return train, test, (frame.fraud_known_at <= us(protocol.test_start))[train].astype(np.int64)


def generated_protocol(start: datetime) -> Protocol:
    """The protocol on generated data: training from day 42 (the features' 30-day windows and the
    7-day delay need the history before it), 7 days each of training, delay and test."""
    return Protocol(train_start=start + timedelta(days=42), train_days=7, delay_days=7, test_days=7)


def evaluate_frame(
    frame: fx.Frame,
    protocol: Protocol,
    *,
    seed: int = 0,
    scorer: Callable[[np.ndarray], np.ndarray] | None = None,
    name: str | None = None,
    fit: Callable[..., Any] | None = None,
    x: np.ndarray | None = None,
    scenario: np.ndarray | None = None,
) -> dict[str, Any]:
    """The protocol on a history frame (no database): features with the protocol's delay (or
    ``x``, the same features computed once by a caller comparing models), a model fitted on the
    training window (``fit``, our training by default) unless a ``scorer`` is given, and the
    metrics on the test window. With generated data's ``scenario`` per row ("" for legitimate),
    each fraud scenario's AUC against the legitimate test rows: a model good at one trick shows
    it there."""

    if x is None:
        x = fx.features_offline(frame, frame, label_delay_days=protocol.delay_days)
    us = fx.to_epoch_us
    train, test, y_train = windows(frame, protocol)
    is_fraud = frame.fraud_known_at != fx.NOT_FRAUD
    y_test = is_fraud[test].astype(np.int64)
    calibration: dict[str, Any] = {}
    if scorer is None:
        if y_train.sum() < 5:
            raise ValueError(f"only {int(y_train.sum())} fraud labels in the training window")
        model = (fit or training.fit)(x[train], y_train, seed=seed)
        raw = model.predict_proba(x[test].astype(np.float32))[:, 1]
        # Calibrated, as production calibrates, on a window the model did not train on whose
        # labels are known when testing starts: here the week before the training window.
        week = (frame.ts >= us(protocol.train_start) - CALIBRATION_DAYS * fx.DAY) & (
            frame.ts < us(protocol.train_start)
        )
        y_week = (frame.fraud_known_at <= us(protocol.test_start))[week].astype(np.int64)
        fitted = (
            training.fit_calibration(model.predict_proba(x[week].astype(np.float32))[:, 1], y_week)
            if week.any()
            else {}
        )
        scores = calibrate(raw, fitted)
        calibration = {"fitted": fitted, "window_fraud": int(y_week.sum())}
        evaluated = name or f"fresh {training.ALGORITHM} (seed {seed})"
    else:
        raw = scores = scorer(x[test])
        evaluated = name or "stored model"
    # The standard protocol leaves out cards already known to be compromised (they are blocked in
    # practice; keeping them would reward re-finding known fraud). The figures over every test
    # row are reported beside.
    kept = not_known_compromised(
        ts=frame.ts,
        customer=frame.customer,
        is_fraud=is_fraud,
        train_start=us(protocol.train_start),
        test_start=us(protocol.test_start),
        delay=protocol.delay_days * fx.DAY,
    )[test]
    cp, daily = card_precision_at_k(
        ts=frame.ts[test][kept],
        customer=frame.customer[test][kept],
        scores=scores[kept],
        fraud=y_test[kept],
        test_start=us(protocol.test_start),
        test_days=protocol.test_days,
        k=protocol.k,
    )
    return {
        "model": evaluated,
        "protocol": {
            "train_start": protocol.train_start.isoformat(),
            "train_days": protocol.train_days,
            "delay_days": protocol.delay_days,
            "test_days": protocol.test_days,
            "k": protocol.k,
        },
        "n_train": int(train.sum()),
        "n_train_fraud": int(y_train.sum()),
        "n_test": int(kept.sum()),
        "n_test_fraud": int(y_test[kept].sum()),
        "n_test_known_compromised_left_out": int((~kept).sum()),
        **ranking_metrics(y_test[kept], scores[kept]),
        **calibration_metrics(y_test[kept], scores[kept]),
        f"card_precision_at_{protocol.k}": cp,
        "card_precision_daily": [round(v, 4) for v in daily],
        "all_test_rows": ranking_metrics(y_test, scores),
        "calibration": calibration and {**calibration, "before": calibration_metrics(y_test[kept], raw[kept])},
        **({"by_scenario": _by_scenario(scenario[test][kept], scores[kept])} if scenario is not None else {}),
    }


def _by_scenario(scenario: np.ndarray, scores: np.ndarray) -> dict[str, dict[str, float]]:

    legitimate = scenario == ""
    out = {}
    for name in sorted(set(scenario[~legitimate].tolist())):
        rows = legitimate | (scenario == name)
        out[name] = {
            "n": int((scenario == name).sum()),
            "auc_vs_legitimate": ranking_metrics((scenario[rows] == name).astype(np.int64), scores[rows])["auc_roc"],
        }
    return out


# The data `manage.py model_quality` runs the protocol on.
QUALITY_SOURCES = ("benchmark_simulator", "cipherguard_generator")


def model_quality(
    *, seeds: list[int], sources: list[str], start: datetime, candidates: tuple[str, ...] = (training.ALGORITHM,)
) -> dict[str, Any]:
    """The protocol on freshly generated data for each seed: 70 days, training from day 42 (the
    features' 30-day windows and the 7-day delay need the history before it)."""

    builders = {
        "benchmark_simulator": (
            "the public benchmark's process (fraud.modelops.simulator): 5,000 customers, 10,000 terminals",
            lambda seed: simulate(start=start, days=70, seed=seed),
        ),
        "cipherguard_generator": (
            "our generator (fraud.modelops.generator): 2,000 customers, 300 merchants, five scenarios",
            lambda seed: generate(start=start, days=70, customers=2000, merchants=300, seed=seed),
        ),
    }
    protocol = generated_protocol(start)
    report: dict[str, Any] = {"protocol": {"train_start_day": 42, "train_days": 7, "delay_days": 7, "test_days": 7},
                              "seeds": seeds, "sources": {}}  # fmt: skip

    for source in sources:
        description, build = builders[source]
        generated = [build(seed) for seed in seeds]
        frames = [frame_from_generated(g) for g in generated]
        scenarios = [np.array(g.scenario, dtype=object).astype(str) for g in generated]
        features = [fx.features_offline(f, f, label_delay_days=protocol.delay_days) for f in frames]
        by_candidate = {}
        for candidate in candidates:

            def fit(x: np.ndarray, y: np.ndarray, *, seed: int, candidate: str = candidate) -> Any:
                return training.fit_candidate(candidate, x, y, seed=seed)

            runs = [
                evaluate_frame(frame, protocol, seed=0, fit=fit, name=candidate, x=x, scenario=scenario)
                for frame, x, scenario in zip(frames, features, scenarios, strict=True)
            ]
            summary = {}
            for metric in ("auc_roc", "average_precision", "card_precision_at_100", "brier", "ece"):
                values = [float(r[metric]) for r in runs]
                summary[metric] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
            for name in sorted({n for r in runs for n in r["by_scenario"]}):
                values = [r["by_scenario"][name]["auc_vs_legitimate"] for r in runs if name in r["by_scenario"]]
                summary[f"auc:{name}"] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values)),
                    "values": values,
                }
            by_candidate[candidate] = {"summary": summary, "runs": runs}
        report["sources"][source] = {"description": description, "candidates": by_candidate}
    return report


ROBUSTNESS_METRICS = ("auc_roc", "average_precision", "card_precision_at_100")
# Our generator's scenarios (card testing, a compromised card or merchant, foreign cash-out) are
# a member of the family beside the benchmark's variations: fraud shaped unlike the benchmark's.
# In a family mapping it stands where a simulator Process would, as None.
OUR_GENERATOR = "our_generator"


def model_robustness(
    *,
    candidates: tuple[str, ...],
    seeds: list[int],
    start: datetime,
    customers: int = 5000,
    terminals: int = 10000,
    processes: dict[str, Process | None] | None = None,
    held_out: dict[str, Process | None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The protocol over a family of simulated processes (``simulator.FAMILY`` and our generator,
    2,000 customers at 300 merchants whatever ``customers``) and seeds: for each
    candidate, every process's mean over the seeds, then the mean and the worst case over the
    family per metric. A candidate is chosen on those two, never on one process; the held-out
    processes (``simulator.HELD_OUT``) are reported beside and never used to choose."""
    from fraud.modelops.simulator import FAMILY, HELD_OUT

    family = {**FAMILY, OUR_GENERATOR: None} if processes is None else processes
    held = HELD_OUT if held_out is None else held_out
    protocol = generated_protocol(start)
    per_process: dict[str, dict[str, dict[str, float]]] = {c: {} for c in candidates}
    for name, process in {**family, **held}.items():
        for seed in seeds:
            if process is None:
                generated = generate(start=start, days=63, customers=2000, merchants=300, seed=seed)
            else:
                generated = simulate(
                    start=start, days=63, customers=customers, terminals=terminals, seed=seed, process=process
                )
            frame = frame_from_generated(generated)
            # Features with the protocol's delay, whatever the process's label delay: what
            # production computes. The labels themselves arrive with the process's delay.
            x = fx.features_offline(frame, frame, label_delay_days=protocol.delay_days)
            for candidate in candidates:

                def fit(x: np.ndarray, y: np.ndarray, *, seed: int, candidate: str = candidate) -> Any:
                    return training.fit_candidate(candidate, x, y, seed=seed)

                run = evaluate_frame(frame, protocol, seed=seed, fit=fit, name=candidate, x=x)
                cell = per_process[candidate].setdefault(name, {m: 0.0 for m in ROBUSTNESS_METRICS})
                for metric in ROBUSTNESS_METRICS:
                    cell[metric] += float(run[metric]) / len(seeds)
                if progress:
                    progress(
                        f"{name} seed {seed} {candidate}: " + " ".join(f"{run[m]:.3f}" for m in ROBUSTNESS_METRICS)
                    )
    report: dict[str, Any] = {"seeds": seeds, "family": list(family), "held_out": list(held), "candidates": {}}
    for candidate, cells in per_process.items():
        summary = {}
        for metric in ROBUSTNESS_METRICS:
            values = [cells[name][metric] for name in family]
            summary[metric] = {"mean": float(np.mean(values)), "worst": float(np.min(values))}
            held_values = [cells[name][metric] for name in held]
            if held_values:
                summary[metric]["held_out_worst"] = float(np.min(held_values))
        report["candidates"][candidate] = {"summary": summary, "processes": cells}
    return report


def candidate_costs(
    *, candidates: tuple[str, ...], start: datetime, customers: int = 5000, terminals: int = 10000, seed: int = 1
) -> dict[str, dict[str, Any]]:
    """Each candidate trained as production trains it (the benchmark process, the protocol's
    training window), exported to ONNX and measured as a web worker would load it
    (``fraud.modelops.costs``)."""
    from fraud.modelops.costs import onnx_costs

    protocol = generated_protocol(start)
    frame = frame_from_generated(simulate(start=start, days=63, customers=customers, terminals=terminals, seed=seed))
    x = fx.features_offline(frame, frame, label_delay_days=protocol.delay_days).astype(np.float32)
    train, test, y = windows(frame, protocol)
    neutral = training.neutral_values(x[train])
    rng = np.random.default_rng(seed)
    rows = x[test][rng.permutation(int(test.sum()))[:1000]]
    costs = {}
    for candidate in candidates:
        model = training.fit_candidate(candidate, x[train], y, seed=seed)
        exported = training.export(model, rows[:200], list(fx.FEATURE_NAMES), neutral)
        costs[candidate] = onnx_costs(exported.artifact, rows)
    return costs
