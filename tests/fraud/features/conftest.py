import pytest


@pytest.fixture(autouse=True, params=["history", "store"])
def feature_read(request: pytest.FixtureRequest, settings) -> str:
    """Every feature test runs with the merchant's aggregates read both ways: from its raw history
    and from the feature store. The two must agree with the offline path, and so with each other."""
    settings.FRAUD_FEATURE_READ = request.param
    return request.param
