from __future__ import annotations


def test_healthz_answers_while_the_process_lives(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_503_without_an_active_model(client, db):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "model": "unavailable"}


def test_readyz_is_200_with_database_cache_and_model(client, active_model):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["model"] == active_model.version


def test_the_openapi_schema_and_docs_are_served_without_a_cdn(client, db):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in ("/api/v1/transactions/", "/api/v1/transactions/batch/", "/api/v1/auth/token/"):
        assert path in text
    for code in ("'400'", "'401'", "'409'", "'415'", "'503'"):
        assert code in text
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
