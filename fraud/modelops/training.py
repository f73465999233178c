"""Model fitting, ONNX export and metrics. No Django import; never imported on the request path
(scikit-learn adds ~60 MB to a process and nothing the web workers need)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fraud.scoring.scorer import OnnxScorer, sha256_hex

ALGORITHM = "ensemble_forest_boosting"
VERSION_PREFIX = "fb"
ONNX_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportedModel:
    artifact: bytes
    sha256: str
    neutral_values: list[float]
    onnx_max_abs_diff: float


class OnnxMismatchError(Exception):
    """ONNX and scikit-learn disagree beyond the tolerance: the artifact must not be stored."""


# The forest that was production until the robustness measurement (docs/model.md): 200 trees
# grown to leaves of 10 rows. Best mean Average Precision on one process, but its session is
# 45-92 MB and a row 26-78 µs, over the serving limits (fraud.modelops.costs); kept as a baseline.
RF_PARAMS = {"n_estimators": 200, "min_samples_leaf": 10, "max_features": "sqrt", "n_jobs": -1}

# A forest of shallow trees. Fraud is rare, so a depth-10 tree stops after about 80 nodes (the
# pure legitimate regions need no split), against ~440 for the deep forest's trees: a 9 MB,
# 5 µs session whose family scores match the deep forest's within noise.
FOREST_COMPACT_PARAMS = {"n_estimators": 64, "max_depth": 10, "min_samples_leaf": 10, "max_features": "sqrt",
                         "n_jobs": -1}  # fmt: skip

# The gradient-boosting candidate (production until feature set v3): small trees, many of them.
HGB_PARAMS = {
    "max_iter": 500,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 100,
    "l2_regularization": 1.0,
    "early_stopping": False,
}
# Fewer, slightly larger trees: a third of the nodes to walk per row (serving cost).
HGB_COMPACT_PARAMS = {**HGB_PARAMS, "max_iter": 150, "learning_rate": 0.1, "max_leaf_nodes": 31}


def fit(x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> LogOddsEnsemble:
    """The production model on float32 features (the dtype ONNX serves, so both see the same
    numbers): the compact forest and compact boosting averaged in log-odds, chosen over a family
    of simulated processes by mean and worst case within the serving limits (docs/model.md). The
    forest holds where labels come late, boosting where fraud hides in amounts; the average is
    at least as good as the better member almost everywhere. No class weighting: the calibration
    fitted on the validation window maps the scores to fraud rates."""
    return fit_candidate("ensemble_forest_boosting", x, y, seed=seed)  # type: ignore[return-value]


def fit_candidate(name: str, x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> object:
    """The model candidates compared under the temporal protocol (``manage.py model_quality
    --candidates``); ``ensemble_forest_boosting`` is what production trains (``fit``). Fitting
    uses every core (it runs in a worker or a command, never in a web process)."""
    x = np.asarray(x, dtype=np.float32)
    if name == "random_forest":
        model = RandomForestClassifier(**RF_PARAMS, random_state=seed)
    elif name == "random_forest_balanced":
        model = RandomForestClassifier(**RF_PARAMS, class_weight="balanced_subsample", random_state=seed)
    elif name == "forest_compact":
        model = RandomForestClassifier(**FOREST_COMPACT_PARAMS, random_state=seed)
    elif name == "hgb":
        model = HistGradientBoostingClassifier(**HGB_PARAMS, random_state=seed)
    elif name == "hgb_compact":
        model = HistGradientBoostingClassifier(**HGB_COMPACT_PARAMS, random_state=seed)
    elif name == "ensemble_hgb_lr":
        return LogOddsEnsemble([fit_candidate(m, x, y, seed=seed) for m in ("hgb_compact", "logistic_regression")])
    elif name == "ensemble_forest_boosting":
        return LogOddsEnsemble([fit_candidate(m, x, y, seed=seed) for m in ("forest_compact", "hgb_compact")])
    elif name == "hgb_balanced":
        params = {**HGB_PARAMS, "min_samples_leaf": 50}
        model = HistGradientBoostingClassifier(**params, class_weight="balanced", random_state=seed)
    elif name == "logistic_regression":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    elif name == "logistic_regression_balanced":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    else:
        raise ValueError(f"unknown candidate {name!r}")
    return model.fit(x, y)


CANDIDATES = ("ensemble_forest_boosting", "random_forest", "random_forest_balanced", "forest_compact", "hgb",
              "hgb_compact", "hgb_balanced", "logistic_regression", "logistic_regression_balanced",
              "ensemble_hgb_lr")  # fmt: skip
# The rows of docs/model.md's robustness table (``model_quality --family``): the choice, its
# members, the forest it replaced, and the baselines.
TABLE_CANDIDATES = ("ensemble_forest_boosting", "forest_compact", "hgb_compact", "random_forest", "logistic_regression",
                    "ensemble_hgb_lr")  # fmt: skip


class LogOddsEnsemble:
    """Members' scores averaged in log-odds: ``sigmoid(mean(margin_i))``, each margin the
    member's own log-odds (``decision_function``), or for a forest, which has none, the logit of
    its probability clipped to ``[MARGIN_EPS, 1 - MARGIN_EPS]``. Unlike averaging probabilities,
    a member that is sure is not drowned by one that hedges. Exported as one ONNX graph
    (``export``) over the members' graphs: a handful of nodes on top of theirs."""

    def __init__(self, members: list[object]):
        self.members = members

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        margins = np.stack([_margin(m, x) for m in self.members])
        score = 1 / (1 + np.exp(-margins.mean(axis=0)))
        return np.column_stack([1 - score, score])


# Below the smallest non-zero probability the compact forest can give (1 / (64 trees × 10 rows a
# leaf) ≈ 1.6e-3), so the clip only bounds a forest's "never seen fraud here" zero and changes no
# ranking among its other scores; log-odds -9.2, far enough to leave boosting's margin in charge.
MARGIN_EPS = 1e-4


def _margin(member: object, x: np.ndarray) -> np.ndarray:
    if hasattr(member, "decision_function"):
        return np.asarray(member.decision_function(x), dtype=np.float64)
    p = np.clip(np.asarray(member.predict_proba(x)[:, 1], dtype=np.float64), MARGIN_EPS, 1 - MARGIN_EPS)  # type: ignore[attr-defined]
    return np.log(p) - np.log1p(-p)


def _to_onnx(model: object, n_features: int, *, raw_scores: bool = False) -> Any:
    final = model.steps[-1][1] if hasattr(model, "steps") else model  # a pipeline's classifier
    return convert_sklearn(
        model,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        options={id(final): {"zipmap": False, **({"raw_scores": True} if raw_scores else {})}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )


def _ensemble_onnx(ensemble: LogOddsEnsemble, n_features: int) -> Any:
    """One graph: each member's converted graph under its own prefix, fed the shared input and
    emitting its margin (``_margin``), then their mean through a sigmoid as a ``[n, 2]`` output."""
    from onnx import TensorProto, compose, helper

    nodes, initializers, margins = [], [], []
    consts = [
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("k", TensorProto.FLOAT, [], [float(len(ensemble.members))]),
        helper.make_tensor("fraud_column", TensorProto.INT64, [1], [1]),
        helper.make_tensor("eps", TensorProto.FLOAT, [], [MARGIN_EPS]),
        helper.make_tensor("one_minus_eps", TensorProto.FLOAT, [], [1 - MARGIN_EPS]),
    ]
    opsets: dict[str, int] = {}
    ir_version = 0
    for i, member in enumerate(ensemble.members):
        raw = hasattr(member, "decision_function")
        part = compose.add_prefix(_to_onnx(member, n_features, raw_scores=raw), prefix=f"m{i}_")
        ir_version = max(ir_version, part.ir_version)  # what the converter targets, not onnx's newest
        nodes.append(helper.make_node("Identity", ["features"], [f"m{i}_features"]))
        nodes.extend(part.graph.node)
        initializers.extend(part.graph.initializer)
        for opset in part.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
        # Raw scores (or a forest's probabilities) come as [n, 2]: column 1 is the fraud class's.
        column = f"m{i}_margin" if raw else f"m{i}_p"
        nodes.append(helper.make_node("Gather", [part.graph.output[-1].name, "fraud_column"], [column], axis=1))
        if not raw:  # logit(clip(p)), as _margin computes it
            nodes += [
                helper.make_node("Clip", [column, "eps", "one_minus_eps"], [f"m{i}_pc"]),
                helper.make_node("Sub", ["one", f"m{i}_pc"], [f"m{i}_qc"]),
                helper.make_node("Log", [f"m{i}_pc"], [f"m{i}_logp"]),
                helper.make_node("Log", [f"m{i}_qc"], [f"m{i}_logq"]),
                helper.make_node("Sub", [f"m{i}_logp", f"m{i}_logq"], [f"m{i}_margin"]),
            ]
        margins.append(f"m{i}_margin")
    nodes += [
        helper.make_node("Sum", margins, ["margin_sum"]),
        helper.make_node("Div", ["margin_sum", "k"], ["margin_mean"]),
        helper.make_node("Sigmoid", ["margin_mean"], ["fraud"]),
        helper.make_node("Sub", ["one", "fraud"], ["legitimate"]),
        helper.make_node("Concat", ["legitimate", "fraud"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "log_odds_ensemble",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[*initializers, *consts],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()], ir_version=ir_version
    )


def export(model: object, x_check: np.ndarray, feature_names: list[str], neutral: np.ndarray) -> ExportedModel:
    """Convert to ONNX (probabilities as a plain ``[n, 2]`` tensor, no ZipMap) and prove it agrees
    with scikit-learn on ``x_check`` within ``ONNX_TOLERANCE``."""
    n_features = len(feature_names)
    if isinstance(model, LogOddsEnsemble):
        onnx_model = _ensemble_onnx(model, n_features)
    else:
        onnx_model = _to_onnx(model, n_features)
    artifact = onnx_model.SerializeToString()
    digest = sha256_hex(artifact)
    scorer = OnnxScorer(artifact, expected_sha256=digest, feature_names=feature_names, neutral_values=neutral.tolist())
    x32 = np.asarray(x_check, dtype=np.float32)
    diff = float(np.max(np.abs(scorer.predict(x32) - model.predict_proba(x32)[:, 1]))) if len(x32) else 0.0
    if diff > ONNX_TOLERANCE:
        raise OnnxMismatchError(f"ONNX and scikit-learn differ by {diff:.2e} (> {ONNX_TOLERANCE})")
    return ExportedModel(
        artifact=artifact, sha256=digest, neutral_values=[float(v) for v in neutral], onnx_max_abs_diff=diff
    )


# Fewer frauds than this in the calibration window and the scores are left as they are: two
# parameters fitted on a handful of positives would move every threshold on noise.
CALIBRATION_MIN_FRAUD = 30


def fit_calibration(scores: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Platt scaling on the log-odds (``fraud.scoring.scorer.calibrate``): a one-feature logistic
    regression of the outcome on ``logit(score)``, fitted on a window the model did not train on.
    Two parameters, so a few thousand rows with a few dozen frauds fit it stably (isotonic
    regression would need far more, and its steps are not a smooth score). Empty (no
    calibration) with too few frauds, or when the fit would reverse the ranking."""
    y = np.asarray(y, dtype=np.int64)
    if y.sum() < CALIBRATION_MIN_FRAUD or y.sum() == len(y):
        return {}
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1 - 1e-7)
    logit = (np.log(p) - np.log1p(-p)).reshape(-1, 1)
    fitted = LogisticRegression(C=1e4, max_iter=1000).fit(logit, y)
    a, b = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
    if a <= 0:
        return {}
    return {"a": a, "b": b, "n": int(len(y)), "n_fraud": int(y.sum())}


def neutral_values(x: np.ndarray) -> np.ndarray:
    """Per-feature medians of the (mostly legitimate) training rows: the 'ordinary' value a
    feature is set to when measuring its contribution to a score."""
    return np.median(np.asarray(x, dtype=np.float32), axis=0).astype(np.float32)


def binary_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float | int]:
    y_true = np.asarray(y_true, dtype=np.int64)
    out: dict[str, float | int] = {"n": int(len(y_true)), "n_fraud": int(y_true.sum())}
    if 0 < y_true.sum() < len(y_true):
        out["auc_roc"] = float(roc_auc_score(y_true, scores))
        out["average_precision"] = float(average_precision_score(y_true, scores))
    return out
