"""What a model costs to serve, measured the way a web worker pays it: the onnxruntime session's
resident memory and the time of one single-row ``run`` on one thread. No Django import.

Measured in a fresh Python process per model, so one model's allocations never count against
another's, and the figures are those of a worker that loads only this model."""

from __future__ import annotations

import json
import subprocess  # nosec B404 - runs this interpreter on a file we wrote, no shell
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

# The hard limits a candidate must meet to be chosen at all.
MAX_SESSION_MB = 30.0
MAX_ROW_US = 25.0

_MEASURE = r"""
import json, sys, time
import numpy as np

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

import onnxruntime as ort
rows = np.load(sys.argv[2])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
before = rss_kb()
artifact = open(sys.argv[1], "rb").read()
session = ort.InferenceSession(artifact, sess_options=options, providers=["CPUExecutionProvider"])
del artifact
name, out = session.get_inputs()[0].name, [session.get_outputs()[-1].name]
singles = [np.ascontiguousarray(rows[i : i + 1]) for i in range(len(rows))]
for a in singles[:50]:
    session.run(out, {name: a})
after = rss_kb()
best = float("inf")
for _ in range(5):
    started = time.perf_counter()
    for a in singles:
        session.run(out, {name: a})
    best = min(best, time.perf_counter() - started)
print(json.dumps({"session_mb": (after - before) / 1024, "row_us": best / len(singles) * 1e6}))
"""


def onnx_costs(artifact: bytes, rows: np.ndarray, *, sample: int = 1000) -> dict[str, Any]:
    """Artifact size, session memory (RSS growth from loading it and running it) and single-row
    latency (best of five passes over ``sample`` rows) of an ONNX model, in a fresh process."""
    x = np.asarray(rows[:sample], dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        model, data = Path(tmp) / "model.onnx", Path(tmp) / "rows.npy"
        model.write_bytes(artifact)
        np.save(data, x)
        done = subprocess.run(  # noqa: S603  # nosec B603 - fixed argv: this interpreter, our script, our files
            [sys.executable, "-c", _MEASURE, str(model), str(data)], capture_output=True, text=True, timeout=600
        )
    if done.returncode != 0:
        raise RuntimeError(f"measuring the model failed: {done.stderr[-500:]}")
    measured = json.loads(done.stdout)
    return {
        "artifact_mb": round(len(artifact) / 2**20, 2),
        "session_mb": round(float(measured["session_mb"]), 1),
        "row_us": round(float(measured["row_us"]), 1),
        "within_limits": measured["session_mb"] <= MAX_SESSION_MB and measured["row_us"] <= MAX_ROW_US,
    }
