"""Django's cache on Redis (REDIS_URL), shared by every web process: the API's throttles
and the login guard count there, so a client cannot spread its guesses over processes.

Redis away must not take the API down with it (jobs are saved while Redis is away and
scheduled when it is back), so while Redis does not answer the cache falls back to a
store in this process for ``RETRY_REDIS_AFTER`` seconds at a time: throttles and
lockouts keep working per process instead of failing every request.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

logger = logging.getLogger(__name__)

RETRY_REDIS_AFTER = 5.0  # seconds on the local store before Redis is tried again


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._local = LocMemCache(f"fallback-{id(self)}", params)
        self._away_until = 0.0

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= self._away_until:
            try:
                return getattr(super(), name)(*args, **kwargs)
            except redis.RedisError as exc:
                logger.warning(
                    "cache: Redis does not answer (%s); this process counts on its own for %g s",
                    exc,
                    RETRY_REDIS_AFTER,
                )
                self._away_until = time.monotonic() + RETRY_REDIS_AFTER
        return getattr(self._local, name)(*args, **kwargs)

    def add(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> Any:
        return self._call("add", key, value, timeout, version)

    def get(self, key: str, default: Any = None, version: Any = None) -> Any:
        return self._call("get", key, default, version)

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> Any:
        return self._call("set", key, value, timeout, version)

    def touch(self, key: str, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> Any:
        return self._call("touch", key, timeout, version)

    def delete(self, key: str, version: Any = None) -> Any:
        return self._call("delete", key, version)

    def get_many(self, keys: Any, version: Any = None) -> Any:
        return self._call("get_many", keys, version)

    def has_key(self, key: str, version: Any = None) -> Any:
        return self._call("has_key", key, version)

    def incr(self, key: str, delta: int = 1, version: Any = None) -> Any:
        return self._call("incr", key, delta, version)

    def set_many(self, data: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> Any:
        return self._call("set_many", data, timeout, version)

    def delete_many(self, keys: Any, version: Any = None) -> Any:
        return self._call("delete_many", keys, version)

    def clear(self) -> bool:
        """Delete this cache's keys only: Django's would FLUSHDB, and the Redis holds the
        Celery broker's queues and the RedBeat schedule too."""
        self._local.clear()
        try:
            client = self._cache.get_client(None, write=True)
            # Keys are "<KEY_PREFIX>:<version>:<key>" (BaseCache.make_key).
            keys = list(client.scan_iter(match=f"{self.key_prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        except redis.RedisError as exc:
            logger.warning("cache: Redis does not answer (%s); cleared this process's only", exc)
            return False
        return True
