"""GET /api/v1/auth/whoami/: the calling client as the API sees it."""


def test_whoami_tells_a_client_its_name_and_quota(alice, alice_api):
    alice.api_requests_per_hour = 5000
    alice.save(update_fields=["api_requests_per_hour"])
    response = alice_api.get("/api/v1/auth/whoami/")
    assert response.status_code == 200
    assert response.json() == {"username": "alice-client", "requests_per_hour": 5000, "burst_per_second": 20}
