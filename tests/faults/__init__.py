"""Fault suite: CipherGuard's own PostgreSQL, Redis, gunicorn and Celery, broken on purpose.

Run on its own (`pytest tests/faults -q -s -p no:cacheprovider`); see tests/faults/conftest.py."""
