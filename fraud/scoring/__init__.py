"""Real-time scoring: the API, the scoring service, the process's runtime (the active model,
thresholds, lists and rules), the ONNX scorer and the reasons given with a score."""
