from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fraud.webhooks.receiver import Receiver, running_receiver


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1, which the SSRF guard lets through only because the test says so
    (as an operator would with WEBHOOKS_ALLOWED_NETWORKS)."""
    settings.WEBHOOKS_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.WEBHOOKS_HTTPS_ONLY = False
    yield from running_receiver()
