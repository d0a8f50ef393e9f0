"""Permits for the account's concurrent-call limit (design.md §3), shared by every worker.

Per account, in Redis:
- `permits`: sorted set, one member per live call (the call id), score = lease expiry (ms).
  Taking one is idempotent per call, so a duplicate delivery never takes two. An expired lease
  (a worker died) frees itself: every script first drops members past their expiry.
- `waiting`: sorted set of calls waiting for a permit, score = priority then age: the line. It
  indexes the database's `waiting` rows (the truth); the watchdog puts back what it lost.
  A freed permit is handed to exactly one waiter, which leaves the line in the same step and
  holds the permit as a reservation until its dial message claims it (hand-off, never a
  broadcast: no waiter is woken twice).
- `limit`: the learned limit, lowered when the API answers 429 despite a permit (another
  system shares the account) and raised one step after a full turnover of clean starts.
- `cooldown`: set with a TTL after a 429; no permit is handed out while it exists.
- `429s`: when 429s arrived, for `dialq capacity` (last hour).
- `paused`: set (with a TTL) while the account's API circuit is open: the line is parked, no
  permit is handed out, and only the circuit's probe may take a free permit (`acquire(probe=)`).
  So an outage costs one probe per cooldown, not one delivery per waiting call.
- `granted`: sorted set, when each permit was last granted or handed (ms). A permit is held
  before the claim commits, so for a moment the database still says `queued` or `waiting`: the
  watchdog frees such permits only once the grant is old enough that no claim can still follow.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from dialq import routing

# Shared by the scripts below: hand each free permit to exactly one waiter, best first, and
# take it out of the index in the same step, so no waiter is ever woken twice. The permit is
# held for it at once, for `reserve_ms` (its dial message is on the way; its own acquire turns
# the reservation into a full lease).
HANDOFF = """
local function handoff(permits, waiting, granted, limit, now, reserve_ms)
  local handed = {}
  local free = limit - redis.call('ZCARD', permits)
  while free > 0 do
    local head = redis.call('ZPOPMIN', waiting)
    if #head == 0 then break end
    redis.call('ZADD', permits, now + reserve_ms, head[1])
    redis.call('ZADD', granted, now, head[1])
    table.insert(handed, head[1])
    free = free - 1
  end
  return handed
end
local function current_limit(limit_key, configured)
  return math.min(tonumber(redis.call('GET', limit_key) or configured), configured)
end
"""

# Returns {code, learning, handed...}: code 1 granted (the call's lease is `expiry`), 0 full,
# -1 cooling down, -2 parked (paused); learning 1 while the learned limit is below the
# configured one (a clean start then counts toward raising it); handed are other waiters this
# call's arrival found free permits for.
ACQUIRE = (
    HANDOFF
    + """
local permits, waiting, limit_key, cooldown, granted, paused =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local call_id, now, expiry, configured, score, reserve_ms, probe =
    ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
    tonumber(ARGV[6]), ARGV[7]
redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
local limit = current_limit(limit_key, configured)
local learning = limit < configured and 1 or 0
local function grant()
  redis.call('ZREM', waiting, call_id)
  redis.call('ZADD', permits, expiry, call_id)
  redis.call('ZADD', granted, now, call_id)
end
-- Held already: a reservation handed to it, or a duplicate delivery. Idempotent per call.
if redis.call('ZSCORE', permits, call_id) then grant() return {1, learning} end
-- The API is out: the line is parked; only the probe may take a free permit, out of turn.
if redis.call('EXISTS', paused) == 1 then
  if probe == '1' and limit > redis.call('ZCARD', permits) then
    grant()
    return {1, learning}
  end
  redis.call('ZADD', waiting, score, call_id)
  return {-2, learning}
end
-- It joins the line at its own place: calls that waited longer (or matter more) go first.
redis.call('ZADD', waiting, score, call_id)
if redis.call('EXISTS', cooldown) == 1 then return {-1, learning} end
local handed = handoff(permits, waiting, granted, limit, now, reserve_ms)
local result, code = {0, learning}, 0
for _, id in ipairs(handed) do
  if id == call_id then code = 1 else table.insert(result, id) end
end
if code == 1 then grant() end
result[1] = code
return result
"""
)

# Frees the call's permit (and its place in line, if any); returns the waiters handed a permit.
RELEASE = (
    HANDOFF
    + """
local permits, waiting, limit_key, cooldown, granted, paused =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local call_id, now, configured, reserve_ms =
    ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREM', permits, call_id)
redis.call('ZREM', granted, call_id)
redis.call('ZREM', waiting, call_id)
redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
if redis.call('EXISTS', cooldown) == 1 or redis.call('EXISTS', paused) == 1 then return {} end
return handoff(permits, waiting, granted, current_limit(limit_key, configured), now, reserve_ms)
"""
)

# The watchdog's repair: calls the database says are waiting but the index lost (a Redis
# restart without AOF). Added only if absent and holding no permit: a call granted since the
# (possibly seconds old) database read is not waiting any more.
INDEX_MISSING = """
local waiting, permits = KEYS[1], KEYS[2]
local added = 0
for i = 1, #ARGV, 2 do
  if not redis.call('ZSCORE', permits, ARGV[i]) then
    added = added + redis.call('ZADD', waiting, 'NX', tonumber(ARGV[i + 1]), ARGV[i])
  end
end
return added
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
    PAUSED = -2  # the line is parked: the account's API is out


# How long a permit handed to a waiter is held for it before its dial message claims it. Longer
# than the watchdog's claim grace, which frees an unclaimed reservation first (and re-indexes
# its call), so a lost message costs one tick, not a slot.
RESERVE_S = 90.0


@dataclass(frozen=True)
class Admission:
    """What `acquire` decided for the call, and the other waiters it found permits for (each
    must be sent its dial message: the permit is held for it)."""

    verdict: Verdict
    handed: list[str]
    # The learned limit was below the configured one: a clean start is worth `saw_success`.
    learning: bool = False


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
        self._index_missing = client.register_script(INDEX_MISSING)
        self._saw_429 = client.register_script(SAW_429)
        self._saw_success = client.register_script(SAW_SUCCESS)
        self._settled = client.register_script(SETTLED)

    def _key(self, account: str, name: str) -> str:
        return f"{routing.REDIS_PREFIX}cap:{account}:{name}"

    def _keys(self, account: str, *parts: str) -> list[str]:
        return [self._key(account, part) for part in parts]

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def acquire(
        self, account: str, call_id: str, *, score: int, lease_s: float, probe: bool = False
    ) -> Admission:
        """Take (or renew) the call's permit; when none is free, it waits in line (`score`).

        A permit is granted only in line order: a newcomer never takes one ahead of a call that
        waited longer. Free permits the line was owed go to its head at once (`handed`). While
        the account is paused every call joins the line, except the API circuit's `probe`,
        which takes a free permit if there is one.
        """
        now = self._now_ms()
        reply = self._acquire(
            keys=self._line_keys(account),
            args=[
                call_id,
                now,
                now + int(lease_s * 1000),
                self.limits[account],
                score,
                int(RESERVE_S * 1000),
                "1" if probe else "0",
            ],
        )
        return Admission(Verdict(int(reply[0])), [_text(m) for m in reply[2:]], reply[1] == 1)

    def renew(self, account: str, call_id: str, lease_s: float) -> None:
        """Extend a live call's lease (only if it still holds one)."""
        expiry = self._now_ms() + int(lease_s * 1000)
        self.redis.zadd(self._key(account, "permits"), {call_id: expiry}, xx=True)

    def release(self, account: str, call_id: str) -> list[str]:
        """Give the call's permit (and its place in line) back; each free permit is handed to
        one waiter, best first, taken out of line in the same step. Returns those waiters."""
        members = self._release(
            keys=self._line_keys(account),
            args=[call_id, self._now_ms(), self.limits[account], int(RESERVE_S * 1000)],
        )
        return [_text(m) for m in members]

    def _line_keys(self, account: str) -> list[str]:
        return self._keys(account, "permits", "waiting", "limit", "cooldown", "granted", "paused")

    def pause(self, account: str, hold_s: float) -> None:
        """Park the account's line (its API is out) for at most `hold_s`, renewed while it lasts."""
        self.redis.set(self._key(account, "paused"), 1, px=max(1, int(hold_s * 1000)))

    def resume(self, account: str) -> list[str]:
        """The API answers again: unpark the line and hand every free permit on (returned)."""
        self.redis.delete(self._key(account, "paused"))
        return self.hand_off(account)

    def paused(self, account: str) -> bool:
        return bool(self.redis.exists(self._key(account, "paused")))

    def head_of_line(self, account: str) -> str | None:
        head = self.redis.zrange(self._key(account, "waiting"), 0, 0)
        return _text(head[0]) if head else None

    def holds(self, account: str, call_id: str) -> bool:
        """Whether the call holds a permit whose lease has not run out."""
        expiry = self.redis.zscore(self._key(account, "permits"), call_id)
        return expiry is not None and expiry > self._now_ms()

    def forget(self, account: str, call_id: str) -> bool:
        """Take the call out of line, keeping any permit it holds (it may be live)."""
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

    def index_missing(self, account: str, scored: dict[str, int]) -> int:
        """Put back in line the calls (the database's waiting rows) the index lost; returns how
        many were missing. Calls holding a permit are left out."""
        flat: list[str | int] = []
        for call_id, score in scored.items():
            flat += [call_id, score]
        if not flat:
            return 0
        return int(self._index_missing(keys=self._keys(account, "waiting", "permits"), args=flat))

    def busy_accounts(self) -> list[str]:
        """Accounts with a permit held or a call in line: the only ones a tick must look at."""
        pipe = self.redis.pipeline(transaction=False)
        for account in self.limits:
            pipe.zcard(self._key(account, "permits"))
            pipe.zcard(self._key(account, "waiting"))
        counts = pipe.execute()
        return [
            account
            for i, account in enumerate(self.limits)
            if int(counts[2 * i]) or int(counts[2 * i + 1])
        ]

    def holders(self, account: str) -> list[str]:
        return self.holders_of([account])[account]

    def holders_of(self, accounts: Iterable[str]) -> dict[str, list[str]]:
        """Each account's permit holders (expired leases dropped first): one round trip."""
        names = list(accounts)
        now = self._now_ms()
        pipe = self.redis.pipeline(transaction=False)
        for account in names:
            key = self._key(account, "permits")
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zrange(key, 0, -1)
        replies = pipe.execute()
        return {a: [_text(m) for m in replies[2 * i + 1]] for i, a in enumerate(names)}

    def index_intact(self) -> bool:
        """False once after Redis lost its data (a restart without AOF): the marker is gone."""
        marker = f"{routing.REDIS_PREFIX}cap-index-marker"
        return not self.redis.set(marker, 1, nx=True)

    def settled_holders(self, account: str, older_than_s: float) -> list[str]:
        """Holders whose permit was granted at least `older_than_s` ago."""
        now = self._now_ms()
        members = self._settled(
            keys=self._keys(account, "permits", "granted"),
            args=[now, now - int(older_than_s * 1000)],
        )
        return [_text(m) for m in members]

    def hand_off(self, account: str) -> list[str]:
        """Hand every free permit to a waiter (after a cooldown ends, or a lost wake-up)."""
        return self.release(account, "")  # releasing no one: only the hand-off runs

    def hand_off_all(self, accounts: Iterable[str]) -> dict[str, list[str]]:
        """`hand_off` for each account whose line is not parked, in one round trip; parked
        accounts are left out (their line waits for the API, see `dialq.circuit`)."""
        names = list(accounts)
        pipe = self.redis.pipeline(transaction=False)
        for account in names:
            pipe.exists(self._key(account, "paused"))
        open_ = [a for a, parked in zip(names, pipe.execute(), strict=True) if not parked]
        now = self._now_ms()
        pipe = self.redis.pipeline(transaction=False)
        for account in open_:
            self._release(
                keys=self._line_keys(account),
                args=["", now, self.limits[account], int(RESERVE_S * 1000)],
                client=pipe,
            )
        replies = pipe.execute()
        return {a: [_text(m) for m in members] for a, members in zip(open_, replies, strict=True)}

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
