"""Permits for the account's concurrent-call limit (design.md §3), shared by every worker.

Per account, in Redis:
- `permits`: sorted set, one member per live call (the call id), score = lease expiry (ms).
  Taking one is idempotent per call, so a duplicate delivery never takes two. An expired lease
  (a worker died) frees itself: every script first drops members past their expiry.
- `waiting`: sorted set of calls waiting for a permit, score = priority then age. It is an
  index of the database's `waiting` rows (the truth), rebuilt by the watchdog.
- `limit`: the learned limit, lowered when the API answers 429 despite a permit (another
  system shares the account) and raised one step after a full turnover of clean starts.
- `cooldown`: set with a TTL after a 429; no permit is handed out while it exists.
- `429s`: when 429s arrived, for `dialq capacity` (last hour).
- `granted`: sorted set, when each permit was last granted (ms). A worker takes a permit before
  its claim commits, so for a moment the database still says `queued`: the watchdog frees the
  permits of such calls only once the grant is old enough that no claim can still be under way.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from dialq import routing

ACQUIRE = """
local permits, waiting, limit_key, cooldown, granted =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local call_id, now, expiry, configured, score =
    ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
local function grant()
  redis.call('ZREM', waiting, call_id)
  redis.call('ZADD', permits, expiry, call_id)
  redis.call('ZADD', granted, now, call_id)
  return 1
end
if redis.call('ZSCORE', permits, call_id) then return grant() end
-- Its own index entry (perhaps scored by another process) never stands ahead of itself.
redis.call('ZREM', waiting, call_id)
local function wait(code)
  redis.call('ZADD', waiting, score, call_id)
  return code
end
if redis.call('EXISTS', cooldown) == 1 then return wait(-1) end
local limit = math.min(tonumber(redis.call('GET', limit_key) or configured), configured)
local free = limit - redis.call('ZCARD', permits)
-- Calls that waited longer (or matter more) go first: a newcomer does not barge past them.
local ahead = redis.call('ZCOUNT', waiting, '-inf', '(' .. score)
if free <= 0 or ahead >= free then return wait(0) end
return grant()
"""

RELEASE = """
local permits, waiting, limit_key, cooldown, granted =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local call_id, now, configured = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREM', permits, call_id)
redis.call('ZREM', granted, call_id)
redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
if redis.call('EXISTS', cooldown) == 1 then return {} end
local limit = math.min(tonumber(redis.call('GET', limit_key) or configured), configured)
local free = limit - redis.call('ZCARD', permits)
if free <= 0 then return {} end
return redis.call('ZRANGE', waiting, 0, free - 1)
"""

# Rebuilt from a database read that may be a few seconds old: a call granted a permit since
# then is not waiting any more, and indexing it again would count it ahead of real waiters.
INDEX = """
local waiting, permits = KEYS[1], KEYS[2]
redis.call('DEL', waiting)
for i = 1, #ARGV, 2 do
  if not redis.call('ZSCORE', permits, ARGV[i]) then
    redis.call('ZADD', waiting, tonumber(ARGV[i + 1]), ARGV[i])
  end
end
return redis.call('ZCARD', waiting)
"""

SAW_429 = """
local permits, limit_key, cooldown, log, successes, granted =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local call_id, now, cooldown_ms, configured, event =
    ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
-- The API holds fewer of our calls than we have permits for: learn that, minus this one.
local holding = redis.call('ZCARD', permits)
if redis.call('ZSCORE', permits, call_id) then holding = holding - 1 end
local current = math.min(tonumber(redis.call('GET', limit_key) or configured), configured)
local learned = math.max(1, math.min(current, holding))
redis.call('SET', limit_key, learned)
redis.call('SET', successes, 0)
redis.call('ZREM', permits, call_id)
redis.call('ZREM', granted, call_id)
redis.call('SET', cooldown, 1, 'PX', cooldown_ms)
redis.call('ZADD', log, now, event)
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - 3600000)
return learned
"""

# Holders granted at or before ARGV[2]; grant times of permits gone (expired) are dropped.
SETTLED = """
local permits, granted = KEYS[1], KEYS[2]
local now, granted_by = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
for _, id in ipairs(redis.call('ZRANGE', granted, 0, -1)) do
  if not redis.call('ZSCORE', permits, id) then redis.call('ZREM', granted, id) end
end
local settled = {}
for _, id in ipairs(redis.call('ZRANGE', permits, 0, -1)) do
  local at = redis.call('ZSCORE', granted, id)
  if not at or tonumber(at) <= granted_by then table.insert(settled, id) end
end
return settled
"""

SAW_SUCCESS = """
local limit_key, successes = KEYS[1], KEYS[2]
local configured = tonumber(ARGV[1])
local learned = tonumber(redis.call('GET', limit_key) or configured)
if learned >= configured then return configured end
-- Additive increase: one more slot after as many clean starts as the limit allows.
if redis.call('INCR', successes) >= learned then
  redis.call('SET', successes, 0)
  learned = redis.call('INCR', limit_key)
end
return learned
"""


class Verdict(enum.Enum):
    GRANTED = 1
    FULL = 0
    COOLDOWN = -1


@dataclass(frozen=True)
class AccountUsage:
    account: str
    configured_limit: int
    learned_limit: int
    permits_in_use: int
    waiting_in_redis: int
    cooldown_ms: int
    http_429_last_hour: int


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def waiting_score(priority: int, created_ms: int) -> int:
    """Higher priority first, then older first (sorted sets order by ascending score)."""
    return (9 - priority) * 10**13 + created_ms


class Capacity:
    """The permits of every account, in one Redis shared by all workers."""

    def __init__(
        self, client: redis.Redis, limits: dict[str, int], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = client
        self.limits = limits
        self._clock = clock
        self._acquire = client.register_script(ACQUIRE)
        self._release = client.register_script(RELEASE)
        self._index = client.register_script(INDEX)
        self._saw_429 = client.register_script(SAW_429)
        self._saw_success = client.register_script(SAW_SUCCESS)
        self._settled = client.register_script(SETTLED)

    def _key(self, account: str, name: str) -> str:
        return f"{routing.REDIS_PREFIX}cap:{account}:{name}"

    def _keys(self, account: str, *parts: str) -> list[str]:
        return [self._key(account, part) for part in parts]

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def acquire(self, account: str, call_id: str, *, score: int, lease_s: float) -> Verdict:
        """Take (or renew) the call's permit; when none is free, index it as waiting."""
        now = self._now_ms()
        code = self._acquire(
            keys=self._keys(account, "permits", "waiting", "limit", "cooldown", "granted"),
            args=[call_id, now, now + int(lease_s * 1000), self.limits[account], score],
        )
        return Verdict(int(code))

    def renew(self, account: str, call_id: str, lease_s: float) -> None:
        """Extend a live call's lease (only if it still holds one)."""
        expiry = self._now_ms() + int(lease_s * 1000)
        self.redis.zadd(self._key(account, "permits"), {call_id: expiry}, xx=True)

    def release(self, account: str, call_id: str) -> list[str]:
        """Give the permit back; returns the waiting calls that may now take one, in order."""
        members = self._release(
            keys=self._keys(account, "permits", "waiting", "limit", "cooldown", "granted"),
            args=[call_id, self._now_ms(), self.limits[account]],
        )
        return [_text(m) for m in members]

    def forget(self, account: str, call_id: str) -> bool:
        """The call no longer waits (canceled, failed, dialed): drop it from the index.

        True when it was there: it may have held a waiter's place at the head, and a permit
        meant for it is better passed on (see `CallService.pass_on`)."""
        return bool(self.redis.zrem(self._key(account, "waiting"), call_id))

    def saw_429(self, account: str, call_id: str, cooldown_s: float) -> int:
        """A 429 despite a permit: cool the account down, learn a lower limit, free this permit."""
        learned = self._saw_429(
            keys=self._keys(
                account, "permits", "limit", "cooldown", "429s", "successes", "granted"
            ),
            args=[
                call_id,
                self._now_ms(),
                max(1, int(cooldown_s * 1000)),
                self.limits[account],
                f"{self._now_ms()}:{uuid.uuid4().hex[:8]}",
            ],
        )
        return int(learned)

    def saw_success(self, account: str) -> int:
        return int(
            self._saw_success(
                keys=self._keys(account, "limit", "successes"), args=[self.limits[account]]
            )
        )

    def index_waiting(self, account: str, scored: dict[str, int]) -> None:
        """Make the waiting index hold exactly these calls (the database's view)."""
        flat: list[str | int] = []
        for call_id, score in scored.items():
            flat += [call_id, score]
        self._index(keys=self._keys(account, "waiting", "permits"), args=flat)

    def holders(self, account: str) -> list[str]:
        key = self._key(account, "permits")
        self.redis.zremrangebyscore(key, "-inf", self._now_ms())
        return [_text(m) for m in self.redis.zrange(key, 0, -1)]

    def settled_holders(self, account: str, older_than_s: float) -> list[str]:
        """Holders whose permit was granted at least `older_than_s` ago."""
        now = self._now_ms()
        members = self._settled(
            keys=self._keys(account, "permits", "granted"),
            args=[now, now - int(older_than_s * 1000)],
        )
        return [_text(m) for m in members]

    def waiting_head(self, account: str) -> list[str]:
        """The waiting calls that the free permits would admit, in order."""
        return self.release(account, "")  # releasing no one: just asks who may go next

    def usage(self, account: str) -> AccountUsage:
        now = self._now_ms()
        permits, waiting, limit, cooldown, log = self._keys(
            account, "permits", "waiting", "limit", "cooldown", "429s"
        )
        self.redis.zremrangebyscore(permits, "-inf", now)
        configured = self.limits[account]
        learned = self.redis.get(limit)
        return AccountUsage(
            account=account,
            configured_limit=configured,
            learned_limit=min(configured, int(learned)) if learned else configured,
            permits_in_use=int(self.redis.zcard(permits)),
            waiting_in_redis=int(self.redis.zcard(waiting)),
            cooldown_ms=max(0, int(self.redis.pttl(cooldown))),
            http_429_last_hour=int(self.redis.zcount(log, now - 3_600_000, "+inf")),
        )
