"""Inference cost per transaction: CipherGuard's scoring code against a bare onnxruntime
``InferenceSession.run`` on the same model, the same rows, one thread each.

Run by bench/run.py against the seed database (its active model, features of stored
transactions); prints JSON. ``ours`` includes what production does around the session call:
dtype conversion, the explanation rows, slicing the probabilities."""

from __future__ import annotations

import json
import os
import sys
import time

import django


def per_row_us(fn, inputs: list, repeats: int) -> float:
    """Microseconds per row: ``fn`` over every array in ``inputs``, the best of five runs (least
    disturbed by the rest of the machine)."""
    rows = sum(len(a) for a in inputs) * repeats
    for a in inputs[:50]:
        fn(a)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            for a in inputs:
                fn(a)
        best = min(best, time.perf_counter() - started)
    return best / rows * 1e6


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cipherguard.settings")
    django.setup()
    import numpy as np
    import onnxruntime as ort

    from fraud.features.store import features_for_stored
    from fraud.models import ModelStatus, ModelVersion, Transaction
    from fraud.scoring.runtime import load_model
    from fraud.scoring.scorer import REASON_MIN_DELTA

    version = ModelVersion.objects.get(status=ModelStatus.ACTIVE)
    scorer = load_model(version).scorer
    sample = Transaction.objects.order_by("-timestamp")[:1000]
    _, x = features_for_stored(Transaction.objects.filter(pk__in=[t.pk for t in sample]), label_delay_days=7)
    x = x.astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    bare = ort.InferenceSession(bytes(version.artifact), sess_options=options, providers=["CPUExecutionProvider"])
    name, out = bare.get_inputs()[0].name, [bare.get_outputs()[-1].name]

    rows = []
    # Batch 1: each of the 1,000 stored transactions alone (a realistic mix of scores); batch
    # 1,000: all of them in one call.
    for batch, inputs, repeats in (
        (1, [np.ascontiguousarray(x[i : i + 1]) for i in range(len(x))], 3),
        (1000, [x], 20),
    ):
        bare_us = per_row_us(lambda a: bare.run(out, {name: a}), inputs, repeats)
        # The model alone: what our wrapper adds around one session call.
        ours = per_row_us(scorer.predict, inputs, repeats)
        rows.append({"what": "score only: predict()", "batch": batch, "ours_us": round(ours, 2),
                     "bare_us": round(bare_us, 2), "overhead": round(ours / bare_us, 2)})  # fmt: skip
        # What scoring runs: the score, then explanations for rows that can have a reason.
        ours = per_row_us(scorer.score_with_reasons, inputs, repeats)
        rows.append({"what": "score + reasons: score_with_reasons()", "batch": batch, "ours_us": round(ours, 2),
                     "bare_us": round(bare_us, 2), "overhead": round(ours / bare_us, 2)})  # fmt: skip
    explained = float(np.mean(scorer.predict(x) >= REASON_MIN_DELTA))
    json.dump({"model": version.version, "features": int(x.shape[1]), "rows": rows,
               "share_explained": round(explained, 3), "groups": len(scorer.groups)}, sys.stdout)  # fmt: skip


if __name__ == "__main__":
    main()
