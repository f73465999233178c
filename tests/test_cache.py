from __future__ import annotations


def test_the_cache_is_redis_with_a_bounded_pool_when_redis_url_is_set(redis_cache, settings):
    from django_redis import get_redis_connection

    redis_cache.set("cg-test-key", {"n": 1}, timeout=10)
    assert redis_cache.get("cg-test-key") == {"n": 1}
    pool = get_redis_connection("default").connection_pool
    assert pool.max_connections == settings.REDIS_MAX_CONNECTIONS
    redis_cache.delete("cg-test-key")


def test_readiness_checks_the_redis_cache(redis_cache, client, active_model):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["cache"] == "ok"
