"""The leader's lease in Redis, and the fenced writes only its holder can make.

One key holds the leader's random token with a TTL: taken with `SET NX PX`, extended only by the
holder (compare-and-extend), given back only by the holder (compare-and-delete). Each acquisition
increments an epoch counter (INCR), so every term of leadership has a number no earlier term had.
A fenced write names its token and epoch; Redis refuses it, atomically, when either is no longer
current — a deposed leader's late write cannot land.

Redis rather than a PostgreSQL advisory lock: the fleet may record into SQLite (no shared lock
there), Redis is already the component replicas share state through, and an advisory lock lives
as long as a session, which a half-open connection can keep alive long after its process stops
deciding; a lease expires on Redis's clock whatever the holder's network does.
"""

from __future__ import annotations

import os
import time
from typing import Any

# KEYS lease, epoch; ARGV token, ttl_ms → the new epoch, or 0 when another replica holds it.
# The holder may take it again (after a failed renewal): a new term, a new epoch.
_ACQUIRE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('INCR', KEYS[2])
"""
# KEYS lease, epoch; ARGV token, ttl_ms, epoch → 1 extended, 0 not ours (any more).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[3] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS lease, epoch; ARGV token, floor → a new epoch above `floor`, or 0 when not the holder.
# For a record that knows a later term than Redis does (Redis lost its data).
_ADVANCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
return redis.call('INCR', KEYS[2])
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS lease, epoch, target; ARGV token, epoch, expected version, value, version
# → 1 written; 0 fenced off (not the current term); -1 the target moved on (version mismatch).
_FENCED_SET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return 0
end
local current = redis.call('HGET', KEYS[3], 'version') or '0'
if current ~= ARGV[3] then return -1 end
redis.call('HSET', KEYS[3], 'version', ARGV[5], 'value', ARGV[4], 'epoch', ARGV[2])
return 1
"""
# A holder counts its lease as lost this much before Redis could let it expire: the lease time
# runs from when the command was sent, and clocks drift.
SAFETY = 0.8
WRITTEN, FENCED, MOVED_ON = 1, 0, -1  # what a fenced write came to


class Lease:
    """One replica's side of the leader lease. Every method may raise redis errors."""

    def __init__(self, redis: Any, prefix: str, ttl_s: float, token: str | None = None) -> None:
        self.redis = redis
        self.key = prefix + "leader"
        self.epoch_key = prefix + "leader:epoch"
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.token = token or os.urandom(16).hex()
        self.epoch = 0  # of the current term; 0: not held
        self.valid_until = 0.0  # monotonic; past it, the holder no longer counts on the lease
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._advance = redis.register_script(_ADVANCE)
        self._fenced_set = redis.register_script(_FENCED_SET)

    @property
    def held(self) -> bool:
        return self.epoch > 0 and time.monotonic() < self.valid_until

    def _valid_from(self, sent: float) -> float:
        return sent + self.ttl_ms / 1000 * SAFETY

    async def acquire(self) -> int:
        """The new term's epoch, or 0 when another replica holds the lease."""
        sent = time.monotonic()
        epoch = int(
            await self._acquire(keys=[self.key, self.epoch_key], args=[self.token, self.ttl_ms])
        )
        if epoch:
            self.epoch, self.valid_until = epoch, self._valid_from(sent)
        return epoch

    async def renew(self) -> bool:
        """Extend the current term; False (and the term ends here) when it is no longer ours."""
        if not self.epoch:
            return False
        sent = time.monotonic()
        ok = await self._renew(
            keys=[self.key, self.epoch_key], args=[self.token, self.ttl_ms, self.epoch]
        )
        if ok:
            self.valid_until = self._valid_from(sent)
        else:
            self.drop()
        return bool(ok)

    async def advance(self, floor: int) -> int:
        """A new term of the held lease, numbered above `floor`; 0 (and no term) when the lease
        is no longer ours."""
        epoch = int(await self._advance(keys=[self.key, self.epoch_key], args=[self.token, floor]))
        if epoch:
            self.epoch = epoch
        else:
            self.drop()
        return epoch

    def drop(self) -> None:
        """Stop counting on the lease, at once (Redis is away, or a renewal was refused)."""
        self.epoch, self.valid_until = 0, 0.0

    async def release(self) -> None:
        self.drop()
        await self._release(keys=[self.key], args=[self.token])

    async def remaining_ms(self) -> int:
        """How long the current holder's lease still runs on Redis's clock; ≤ 0 when free."""
        return int(await self.redis.pttl(self.key))

    async def fenced_set(
        self, key: str, value: str, version: int, *, epoch: int | None = None
    ) -> int:
        """Write `value` as `key`'s version `version` (the stored one must be `version` - 1),
        only while this term (`epoch`, default the current one) still holds the lease."""
        term = self.epoch if epoch is None else epoch
        return int(
            await self._fenced_set(
                keys=[self.key, self.epoch_key, key],
                args=[self.token, term, version - 1, value, version],
            )
        )


async def read_versioned(redis: Any, key: str) -> tuple[int, str | None]:
    """A fenced value and its version; (0, None) when none was written."""
    version, value = await redis.hmget(key, ["version", "value"])
    if version is None:
        return 0, None
    text = value.decode() if isinstance(value, bytes) else value
    return int(version), text
