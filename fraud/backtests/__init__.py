"""Backtests: a rule version or new thresholds replayed over stored history beside the current
setup, as a background job."""
