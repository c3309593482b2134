"""Django's cache on Redis: shared, our keys only, and no failed requests while Redis is away."""

from __future__ import annotations

from django.core.cache import cache

from scheduler_app import cache as cache_module
from scheduler_app.cache import RedisCache
from scheduler_app.embedded_redis import free_port


def test_the_cache_is_the_redis_of_redis_url(redis_client):
    cache.set("shared", 42, 30)
    assert redis_client.exists("cronfleet-cache:1:shared")
    cache.delete("shared")


def test_clearing_it_deletes_its_own_keys_only(redis_client):
    redis_client.set("redbeat:not-ours", "1")
    cache.set("ours", 1, 30)
    cache.clear()
    assert cache.get("ours") is None
    assert redis_client.get("redbeat:not-ours") == "1"
    redis_client.delete("redbeat:not-ours")


def away_cache() -> RedisCache:
    return RedisCache(
        f"redis://127.0.0.1:{free_port()}/0",
        {"KEY_PREFIX": "t", "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}},
    )


def warnings(caplog) -> int:
    return caplog.text.count("Redis does not answer")


def test_while_redis_is_away_it_counts_in_the_process(caplog):
    away = away_cache()
    assert away.add("n", 0, 30) is True
    assert away.incr("n") == 1
    assert away.get("n") == 1
    # Redis was tried once; the next calls go straight to the local store for a while.
    assert warnings(caplog) == 1


def test_clearing_it_while_redis_is_away_clears_the_local_store(caplog):
    away = away_cache()
    away.set("n", 1, 30)
    assert away.clear() is False
    assert away.get("n") is None


def test_it_tries_redis_again_after_a_while(monkeypatch, caplog):
    monkeypatch.setattr(cache_module, "RETRY_REDIS_AFTER", 0.0)
    away = away_cache()
    away.set("n", 1, 30)
    assert away.incr("n") == 2
    assert warnings(caplog) == 2
