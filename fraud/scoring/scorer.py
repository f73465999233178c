"""The ONNX scoring runtime: loads one model, scores feature rows and explains each score.

No Django import. Explanations are computed in the same ``InferenceSession.run`` as the score:
each input row is followed by one copy per reason group with that group's features set to
neutral values (the training medians); the score change is the group's contribution.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fraud.features.definitions import REASON_GROUPS, ReasonGroup

# One thread per web worker: extra intra-op threads on 2 shared cores made calls up to 1000×
# slower under load (measured, see ../shared/MEASURED.md). Must be set before onnxruntime loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# onnxruntime itself is imported where a session is made, not here: a process forked after
# importing it (a preloading gunicorn master's workers) aborts at exit once it has used it
# (measured: "std::system_error: Invalid argument", SIGABRT), so the master never imports it.

# A reason must move the score by at least one percentage point: smaller contributions are noise
# to an analyst. (It also bounds which rows need explaining at all: see score_with_reasons.)
REASON_MIN_DELTA = 0.01


class ArtifactIntegrityError(Exception):
    """The stored model bytes do not match their recorded SHA-256."""


@dataclass(frozen=True)
class Contribution:
    group: ReasonGroup
    delta: float  # score minus the score with the group neutralised


def calibrate(scores: np.ndarray, calibration: Mapping[str, float] | None) -> np.ndarray:
    """Scores mapped to probabilities: Platt scaling on the log-odds, ``sigmoid(a·logit(p) + b)``
    (fitted by ``fraud.modelops.training.fit_calibration``). With ``a > 0`` it is strictly increasing, so
    rankings (AUC, precision at k) are untouched; no calibration leaves scores as they are."""
    if not calibration:
        return scores
    p = np.clip(scores, 1e-7, 1 - 1e-7)
    z = calibration["a"] * (np.log(p) - np.log1p(-p)) + calibration["b"]
    probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return probabilities


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class OnnxScorer:
    """Wraps one ONNX binary classifier whose output is an ``[n, 2]`` probability array."""

    def __init__(
        self,
        artifact: bytes,
        *,
        expected_sha256: str,
        feature_names: Sequence[str],
        neutral_values: Sequence[float],
        reason_groups: Sequence[ReasonGroup] = REASON_GROUPS,
        threads: int = 1,
        input_names: Sequence[str] | None = None,
        calibration: Mapping[str, float] | None = None,
    ):
        """``input_names``: the columns callers pass, when they are not the model's own (a model of
        an earlier feature set, whose features are a subset of today's, picks its columns by name)."""
        actual = sha256_hex(artifact)
        if actual != expected_sha256:
            raise ArtifactIntegrityError(f"model artifact sha256 {actual} does not match recorded {expected_sha256}")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(artifact, sess_options=options, providers=["CPUExecutionProvider"])
        self.calibration = dict(calibration or {})
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        # skl2onnx classifiers emit (label, probabilities); take the probabilities only.
        self.output_names = [outputs[-1]]
        self.n_features = len(feature_names)
        self.neutral = np.asarray(neutral_values, dtype=np.float32)
        if self.neutral.shape != (self.n_features,):
            raise ValueError("neutral_values must have one value per feature")
        index = {name: i for i, name in enumerate(feature_names)}
        # The training median amount, which the amount-level reason compares with: once per model,
        # not per scored payment.
        self.typical_amount = (
            float(np.expm1(float(self.neutral[index["amount_log"]]))) if "amount_log" in index else None
        )
        self._take: np.ndarray | None = None
        if input_names is not None and list(input_names) != list(feature_names):
            position = {name: i for i, name in enumerate(input_names)}
            missing = [name for name in feature_names if name not in position]
            if missing:
                raise ValueError(f"the input lacks features the model needs: {missing}")
            self._take = np.array([position[name] for name in feature_names], dtype=np.int64)
        # A group explains the features of it this model has (an older model has fewer).
        self.groups = tuple(g for g in reason_groups if any(f in index for f in g.features))
        # For the explanation copies of one input: copy g neutralises group g's columns.
        rows, cols = [], []
        for g, group in enumerate(self.groups):
            for feature in group.features:
                if feature in index:
                    rows.append(g)
                    cols.append(index[feature])
        self._rows = np.array(rows, dtype=np.int64)
        self._cols = np.array(cols, dtype=np.int64)

    def _inputs(self, features: np.ndarray) -> np.ndarray:
        x = features if self._take is None else np.asarray(features)[:, self._take]
        return np.ascontiguousarray(x, dtype=np.float32)

    def raw(self, features: np.ndarray) -> np.ndarray:
        """The ONNX model's own probabilities, before calibration (what export checks against
        scikit-learn)."""
        x = self._inputs(features)
        probabilities: np.ndarray = self.session.run(self.output_names, {self.input_name: x})[0]
        return probabilities[:, 1].astype(np.float64)

    def _run(self, x: np.ndarray) -> np.ndarray:
        probabilities: np.ndarray = self.session.run(self.output_names, {self.input_name: x})[0]
        scores = probabilities[:, 1].astype(np.float64)
        return calibrate(scores, self.calibration)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Fraud probabilities for rows of the input columns (no explanations)."""
        return self._run(self._inputs(features))

    def score_with_reasons(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[n]`` and group contributions ``[n, G]``.

        A group's contribution is the score minus the score with that group neutralised, so it
        is never above the score itself: rows scoring below ``REASON_MIN_DELTA`` cannot have a
        reason, and only the others are explained (a second call, one neutralised copy per group).
        Most traffic scores far below it, so most rows cost one model row instead of 1 + G
        (measured: 13 model rows per transaction made reasons ~90 % of inference)."""
        x = self._inputs(features)
        n = x.shape[0]
        scores = self._run(x)
        deltas = np.zeros((n, len(self.groups)), dtype=np.float64)
        explain = np.flatnonzero(scores >= REASON_MIN_DELTA)
        if explain.size and self.groups:
            m, g = explain.size, len(self.groups)
            stacked = np.repeat(x[explain], g, axis=0).reshape(m, g, self.n_features)
            stacked[:, self._rows, self._cols] = self.neutral[self._cols]
            neutralised = self._run(stacked.reshape(m * g, self.n_features)).reshape(m, g)
            deltas[explain] = scores[explain, None] - neutralised
        return scores, deltas

    def top_contributions(
        self, deltas_row: np.ndarray, k: int, *, minimum: float = REASON_MIN_DELTA
    ) -> list[Contribution]:
        """The k groups that raised the score most (by at least ``minimum``), largest first."""
        order = np.argsort(-deltas_row, kind="stable")[:k]
        return [Contribution(self.groups[i], float(deltas_row[i])) for i in order if deltas_row[i] >= minimum]
