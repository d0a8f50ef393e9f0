"""A circuit per account around the Symbl API, shared by every worker through Redis.

An outage (refused connections, 5xx, timeouts before sending) fails every start request the
same way; spending each call's failure budget on it would fail a whole backlog within a minute
of a brief outage. After `threshold` such failures in a row the account's circuit opens: calls
wait (state `waiting`, reason "API unavailable") instead of dialing, costing nothing. When the
cooldown ends, exactly one call is let through as the probe; its success closes the circuit,
its failure opens it again for twice as long (up to `max_cooldown_s`). Calls fail only at
their own deadline. The waiting calls are parked in the account's capacity line meanwhile
(`Capacity.pause`): only the probe comes back by itself, so a backlog of any size costs one
delivery per cooldown, and the probe's success hands every free permit on at once.

Per account, in Redis: `circuit` (hash: consecutive failures, when the circuit reopens for a
probe (ms), the current cooldown (ms)) and `probe` (the probing call's id, with a TTL so a
probe whose worker died does not hold the circuit shut).

The same mechanism, with its own keys (`kind`) and a threshold of 1, holds an account's calls
while Symbl's token endpoint refuses its credentials (dialq.calls.dial): the condition is the
account's, not any call's, and the probe finds out when the credentials work again.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from dialq import routing

# Returns the time (ms) the circuit reopens for a probe, or 0 when it stays closed.
FAILURE = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if redis.call('GET', KEYS[2]) == ARGV[6] then redis.call('DEL', KEYS[2]) end
if failures < tonumber(ARGV[2]) then return 0 end
local cooldown = tonumber(redis.call('HGET', KEYS[1], 'cooldown') or 0)
local now = tonumber(ARGV[1])
local until_ = tonumber(redis.call('HGET', KEYS[1], 'until') or 0)
if until_ > now then return until_ end  -- already open: a failure that was in flight
if cooldown == 0 then cooldown = tonumber(ARGV[3]) else cooldown = cooldown * 2 end
cooldown = math.min(cooldown, tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'cooldown', cooldown, 'until', now + cooldown)
return now + cooldown
"""

# Returns {verdict, wait_ms}: 1 closed with no failure on record (dial), 3 closed with some
# (dial), 2 the probe (dial), 0 open (wait wait_ms).
ADMIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {1, 0} end
local until_ = tonumber(redis.call('HGET', KEYS[1], 'until') or 0)
if until_ == 0 then return {3, 0} end
local now = tonumber(ARGV[1])
if now < until_ then return {0, until_ - now} end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return {2, 0} end
if redis.call('GET', KEYS[2]) == ARGV[2] then return {2, 0} end
return {0, tonumber(ARGV[4])}
"""

# The circuit is open and its cooldown over, and no call probes: make ARGV[2] the probe (1),
# in one step, so no failure counted meanwhile can slip between the check and the claim.
CLAIM_DUE = """
local until_ = tonumber(redis.call('HGET', KEYS[1], 'until') or 0)
if until_ == 0 or tonumber(ARGV[1]) < until_ then return 0 end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""

# Drop the probe's designation if it still names ARGV[1].
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Admission:
    """May this call send its start request now? If not, when to look again."""

    allowed: bool
    probe: bool = False
    wait_s: float = 0.0
    # Nothing on record for the account: a success has nothing to close (saves a round trip
    # on every dial while the API is healthy).
    clean: bool = False


class Circuit:
    def __init__(
        self,
        client: redis.Redis,
        *,
        threshold: int = 3,
        cooldown_s: float = 5.0,
        max_cooldown_s: float = 30.0,
        probe_ttl_s: float = 60.0,
        kind: str = "circuit",
    ) -> None:
        self.client = client
        self.kind = kind
        self.threshold = threshold
        self.cooldown_ms = int(cooldown_s * 1000)
        self.max_cooldown_ms = int(max_cooldown_s * 1000)
        self.probe_ttl_ms = int(probe_ttl_s * 1000)
        self._failure = client.register_script(FAILURE)
        self._admit = client.register_script(ADMIT)
        self._claim_due = client.register_script(CLAIM_DUE)
        self._release = client.register_script(RELEASE)

    def admit(self, account: str, call_id: str, now_s: float) -> Admission:
        # While another call probes, the others look again after a short pause: the probe
        # answers within the HTTP timeouts, and a success lets all of them through at once.
        retry_ms = min(self.cooldown_ms, 2000)
        verdict, wait_ms = self._admit(
            keys=self._keys(account),
            args=[int(now_s * 1000), call_id, self.probe_ttl_ms, retry_ms],
        )
        if verdict == 0:
            return Admission(False, wait_s=max(0.05, int(wait_ms) / 1000))
        return Admission(True, probe=verdict == 2, clean=verdict == 1)

    @property
    def hold_s(self) -> float:
        """How long an open circuit's state is kept after its last failure (its keys' TTL)."""
        return (4 * self.max_cooldown_ms + self.probe_ttl_ms) / 1000

    def claim_probe(self, account: str, call_id: str, reopens_s: float, now_s: float) -> bool:
        """Make `call_id` the next probe (it comes back when the circuit reopens); False when
        another call already is."""
        ttl_ms = max(0, int((reopens_s - now_s) * 1000)) + self.probe_ttl_ms
        probe = self._keys(account)[1]
        if self.client.set(probe, call_id, nx=True, px=ttl_ms):
            return True
        current = self.client.get(probe)
        if isinstance(current, bytes):
            current = current.decode()
        return current == call_id

    def claim_due_probe(self, account: str, call_id: str, now_s: float) -> bool:
        """Make `call_id` the probe when one is due now (open, cooled down, nobody probing)."""
        args: list[int | str] = [int(now_s * 1000), call_id, self.probe_ttl_ms]
        return bool(self._claim_due(keys=self._keys(account), args=args))

    def release_probe(self, account: str, call_id: str) -> None:
        """`call_id` will not probe after all (it is over, or cannot dial now): another may."""
        self._release(keys=self._keys(account)[1:], args=[call_id])

    def failed(
        self, account: str, call_id: str, now_s: float, why: str | None = None
    ) -> float | None:
        """Count a failure; when the circuit is (now) open, the time it reopens (s). `why`
        is kept for `dialq doctor` while the failures are on record (no secret in it)."""
        keep_ms = 4 * self.max_cooldown_ms + self.probe_ttl_ms
        args = [int(now_s * 1000), self.threshold, self.cooldown_ms, self.max_cooldown_ms]
        until_ms = self._failure(keys=self._keys(account), args=[*args, keep_ms, call_id])
        if why is not None:
            self.client.hset(self._keys(account)[0], "why", why)
        return int(until_ms) / 1000 if int(until_ms) else None

    def why(self, account: str) -> str | None:
        """What the last failure on record was, if one is (see `failed`)."""
        found = self.client.hget(self._keys(account)[0], "why")
        return found.decode() if isinstance(found, bytes) else found

    def succeeded(self, account: str) -> None:
        """The API answered (any answer but an outage): close the circuit."""
        self.client.delete(*self._keys(account))

    def state(self, account: str, now_s: float) -> str:
        until = self.client.hget(self._keys(account)[0], "until")
        if until is None or int(until) == 0:
            return "closed"
        return "open" if now_s * 1000 < int(until) else "probing"

    def _keys(self, account: str) -> list[str]:
        base = f"{routing.REDIS_PREFIX}account:{account}:{self.kind}"
        return [base, f"{base}:probe"]


def all_clear(account: str, *circuits: Circuit) -> bool:
    """True when none of `circuits` has anything on record for the account, so each one's
    `admit` would answer allowed and clean: one round trip (one EXISTS) for the usual case of
    a healthy API, where asking each would take one apiece. False tells nothing: ask each."""
    if not circuits or any(circuit.client is not circuits[0].client for circuit in circuits):
        return False
    keys = [circuit._keys(account)[0] for circuit in circuits]
    return int(circuits[0].client.exists(*keys)) == 0
