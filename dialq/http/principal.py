"""Who a request acts for (its key's accounts and scopes), and the keys an API process knows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache


@dataclass(frozen=True)
class Principal:
    """The key a request came with: what it may do, and for which accounts."""

    key_id: str
    accounts: frozenset[str]
    scopes: frozenset[str]

    def sees(self, account: str) -> bool:
        return account in self.accounts


class KnownKeys:
    """Keys found valid, trusted for `ttl_s` without asking the database again: a request
    then costs no key lookup, and a revoked key is refused within `ttl_s`. Only valid keys
    are kept: an unknown one is looked up every time (and refused every time)."""

    def __init__(
        self, ttl_s: float, size: int = 4096, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._cache: TTLCache[str, Principal] | None = (
            TTLCache(maxsize=size, ttl=ttl_s, timer=timer) if ttl_s > 0 else None
        )
        self._lock = threading.Lock()  # the API's worker threads share it

    def get(self, digest: str, find: Callable[[str], Principal | None]) -> Principal | None:
        if self._cache is None:
            return find(digest)
        with self._lock:
            known = self._cache.get(digest)
        if known is not None:
            return known
        found = find(digest)
        if found is not None:
            with self._lock:
                self._cache[digest] = found
        return found
