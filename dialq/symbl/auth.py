"""Access tokens per account, cached in a store every worker shares (docs/symbl-api.md §2)."""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
import requests
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dialq.config import Account
from dialq.symbl.errors import (
    APIStatusError,
    CapacityError,
    CredentialsError,
    NotSentError,
    OutcomeUnknownError,
    TokenError,
    UnexpectedResponseError,
)
from dialq.symbl.transport import AttemptHook, HttpRequest, exchange, json_object, required_str

log = logging.getLogger("dialq.symbl")

# A token that a fetch could not replace is still used until this close to its expiry.
LAST_RESORT_MARGIN_S = 5.0


@dataclass(frozen=True)
class CachedToken:
    """An access token and the epoch second it expires at. Its repr hides the value."""

    value: str = field(repr=False)
    expires_at: float

    def __repr__(self) -> str:
        return f"CachedToken(value=<hidden>, expires_at={self.expires_at:.0f})"


class TokenStore(Protocol):
    """Where tokens live between requests, and a short lock so one worker fetches for all."""

    def protect(self, account: str, app_secret: str) -> None:
        """Keep the account's tokens so that only a holder of its app secret can use them."""

    def get(self, account: str) -> CachedToken | None: ...

    def put(self, account: str, token: CachedToken) -> None: ...

    def discard(self, account: str, token: str) -> None:
        """Forget the account's token, but only if it is still ``token``."""

    def try_lock(self, account: str) -> str | None:
        """Take the account's fetch lock: an owner id, or None while someone else holds it."""

    def unlock(self, account: str, owner: str) -> None:
        """Release the fetch lock if ``owner`` still holds it."""


class MemoryTokenStore:
    """A TokenStore for one process (tests, the CLI). Tokens are dropped once expired."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._mutex = threading.Lock()
        self._tokens: dict[str, CachedToken] = {}
        self._locks: dict[str, str] = {}

    def protect(self, account: str, app_secret: str) -> None:
        """Nothing to do: this process's memory holds the app secret as well."""

    def get(self, account: str) -> CachedToken | None:
        with self._mutex:
            token = self._tokens.get(account)
        return token if token is not None and token.expires_at > self._clock() else None

    def put(self, account: str, token: CachedToken) -> None:
        with self._mutex:
            self._tokens[account] = token

    def discard(self, account: str, token: str) -> None:
        with self._mutex:
            if account in self._tokens and self._tokens[account].value == token:
                del self._tokens[account]

    def try_lock(self, account: str) -> str | None:
        with self._mutex:
            if account in self._locks:
                return None
            owner = self._locks[account] = uuid.uuid4().hex
            return owner

    def unlock(self, account: str, owner: str) -> None:
        with self._mutex:
            if self._locks.get(account) == owner:
                del self._locks[account]


# Delete the key only if it still holds the caller's value: atomic compare-and-delete.
_DELETE_IF_HASH_FIELD = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_DELETE_IF_VALUE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def sealing_key(account: str, app_secret: str) -> Fernet:
    """The key a shared cache seals the account's tokens with, derived from its app secret.

    Anyone who can read the broker can read the cache (a by-name producer needs nothing
    else); without the app secret a cached token is of no use to them. HKDF, not a password
    hash: an app secret is a long random value, not something a person chose.
    """
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"dialq token cache v1",
        info=f"dialq:token:{account}".encode(),
    ).derive(app_secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class RedisTokenStore:
    """Tokens in Redis hashes whose TTL is the token's remaining lifetime, shared by workers.

    Each token is sealed (Fernet) with a key derived from its account's app secret, given by
    `protect`; an account without one is not cached at all. A value that does not open (sealed
    with another secret, or written before sealing) counts as no token, and is replaced.

    The fetch lock is ``SET NX PX``: it expires by itself, so a worker that dies while
    fetching blocks the others for at most ``lock_ttl_ms``.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        prefix: str = "dialq:token:",
        *,
        lock_ttl_ms: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis_client
        self._prefix = prefix
        self._lock_ttl_ms = lock_ttl_ms
        self._clock = clock
        self._discard_script = redis_client.register_script(_DELETE_IF_HASH_FIELD)
        self._unlock_script = redis_client.register_script(_DELETE_IF_VALUE)
        self._keys: dict[str, Fernet] = {}
        # The last value opened per account: Redis is still asked every time (a token deleted
        # or replaced there is never used), but the same sealed value is not opened again
        # (opening is an HMAC and an AES pass: a sixth of a harvest's time at scale).
        self._opened: dict[str, tuple[str, str]] = {}

    def protect(self, account: str, app_secret: str) -> None:
        self._keys[account] = sealing_key(account, app_secret)
        self._opened.pop(account, None)

    def get(self, account: str) -> CachedToken | None:
        found = self._sealed(account)
        return None if found is None else found[1]

    def put(self, account: str, token: CachedToken) -> None:
        ttl_ms = int((token.expires_at - self._clock()) * 1000)
        key = self._keys.get(account)
        if ttl_ms <= 0 or key is None:
            return
        sealed = key.encrypt(token.value.encode()).decode("ascii")
        self._opened[account] = (sealed, token.value)
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._prefix + account)
            pipe.hset(
                self._prefix + account,
                mapping={"value": sealed, "expires_at": repr(token.expires_at)},
            )
            pipe.pexpire(self._prefix + account, ttl_ms)
            pipe.execute()

    def discard(self, account: str, token: str) -> None:
        found = self._sealed(account)
        if found is not None and found[1].value == token:
            # Compared on the sealed value: a token another worker put meanwhile stays.
            self._discard_script(keys=[self._prefix + account], args=["value", found[0]])

    def _sealed(self, account: str) -> tuple[str, CachedToken] | None:
        """(the value as stored, the token it opens to), or None."""
        key = self._keys.get(account)
        value, expires_at = self._redis.hmget(self._prefix + account, ["value", "expires_at"])
        if key is None or value is None or expires_at is None:
            return None
        sealed = _text(value)
        memo = self._opened.get(account)
        if memo is not None and memo[0] == sealed:
            return sealed, CachedToken(memo[1], float(_text(expires_at)))
        try:
            opened = key.decrypt(sealed.encode()).decode()
        except (InvalidToken, UnicodeError):
            return None
        self._opened[account] = (sealed, opened)
        return sealed, CachedToken(opened, float(_text(expires_at)))

    def try_lock(self, account: str) -> str | None:
        owner = uuid.uuid4().hex
        taken = self._redis.set(self._lock_key(account), owner, nx=True, px=self._lock_ttl_ms)
        return owner if taken else None

    def unlock(self, account: str, owner: str) -> None:
        self._unlock_script(keys=[self._lock_key(account)], args=[owner])

    def _lock_key(self, account: str) -> str:
        return f"{self._prefix}{account}:lock"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class TokenProvider:
    """Hands out a valid token for one account, fetching one only when the store has none.

    Symbl returns the token it already holds, with a smaller ``expiresIn``, until that token
    is near its end (docs/symbl-api.md §2.1): a renewal may legitimately give back the same value.
    """

    def __init__(
        self,
        account_name: str,
        account: Account,
        store: TokenStore,
        session: requests.Session,
        *,
        renew_margin_s: float,
        connect_timeout_s: float,
        read_timeout_s: float,
        clock: Callable[[], float] = time.time,
        lock_wait_s: float = 10.0,
        lock_poll_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._name = account_name
        self._account = account
        self._store = store
        store.protect(account_name, account.app_secret.get_secret_value())
        self._session = session
        self._renew_margin_s = renew_margin_s
        self._timeout_s = (connect_timeout_s, read_timeout_s)
        self._clock = clock
        self._lock_wait_s = lock_wait_s
        self._lock_poll_s = lock_poll_s
        self._sleep = sleep
        # The token Symbl gave back although it was inside the renewal margin.
        self._no_fresher: str | None = None

    def token(self, *, on_attempt: AttemptHook | None = None) -> str:
        """A token that does not expire within the renewal margin, fetched if need be."""
        cached = self._store.get(self._name)
        if cached is not None and self._usable(cached):
            return cached.value
        return self._refresh(None, on_attempt)

    def renew(self, stale: str, *, on_attempt: AttemptHook | None = None) -> str:
        """Forget ``stale`` (the API refused it) and return another token, fetching one."""
        self._store.discard(self._name, stale)
        if self._no_fresher == stale:
            self._no_fresher = None
        return self._refresh(stale, on_attempt)

    def _usable(self, token: CachedToken) -> bool:
        left_s = token.expires_at - self._clock()
        if left_s > self._renew_margin_s:
            return True
        # Asking again would only bring this same token back: use it nearly to its end.
        return token.value == self._no_fresher and left_s > LAST_RESORT_MARGIN_S

    def _refresh(self, stale: str | None, on_attempt: AttemptHook | None) -> str:
        deadline = time.monotonic() + self._lock_wait_s
        while (owner := self._store.try_lock(self._name)) is None:
            found = self._cached_other_than(stale)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                log.warning("token lock for account %s still held; fetching anyway", self._name)
                break
            self._sleep(self._lock_poll_s)
        try:
            found = self._cached_other_than(stale)  # fetched by another worker meanwhile
            return found if found is not None else self._fetch(on_attempt)
        finally:
            if owner is not None:
                self._store.unlock(self._name, owner)

    def _cached_other_than(self, stale: str | None) -> str | None:
        cached = self._store.get(self._name)
        if cached is None or cached.value == stale or not self._usable(cached):
            return None
        return cached.value

    def _fetch(self, on_attempt: AttemptHook | None) -> str:
        secret = self._account.app_secret.get_secret_value()
        request = HttpRequest(
            operation="token",
            method="POST",
            url=f"{self._account.base_url.rstrip('/')}/oauth2/token:generate",
            headers={},
            json_body={"type": "application", "appId": self._account.app_id, "appSecret": secret},
            secrets=(secret,),
        )
        try:
            token = exchange(
                self._session,
                request,
                self._parse,
                timeout_s=self._timeout_s,
                on_attempt=on_attempt,
            )
        except CapacityError:
            raise
        except APIStatusError as exc:
            if not 400 <= exc.status <= 499:
                raise
            message = "invalid app id or secret" if exc.status == 401 else exc.message
            raise CredentialsError(exc.status, message, exc.body, exc.request_id) from None
        except (NotSentError, OutcomeUnknownError, UnexpectedResponseError) as exc:
            # Whatever became of the token request, the request it was for was never sent.
            raise TokenError(f"no token for account {self._name}: {exc}") from exc
        self._store.put(self._name, token)
        left_s = token.expires_at - self._clock()
        self._no_fresher = token.value if left_s <= self._renew_margin_s else None
        log.info("token for account %s fetched; expires in %.0fs", self._name, left_s)
        return token.value

    def _parse(self, status: int, text: str) -> CachedToken:
        body: Mapping[str, Any] = json_object(status, text)
        value = required_str(body, "accessToken", status)
        expires_in = body.get("expiresIn")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            raise UnexpectedResponseError("expiresIn is not a number", status=status)
        if expires_in <= 0:
            raise UnexpectedResponseError("expiresIn is not positive", status=status)
        return CachedToken(value, self._clock() + float(expires_in))
