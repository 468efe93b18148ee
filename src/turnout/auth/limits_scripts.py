"""The Lua scripts behind `SharedLimits`: each runs atomically inside Redis, on its clock.

A key's log is a sorted set of members `<id>:<requests>:<tokens>` scored by admission time in
ms, with its totals (`n` requests, `tok` tokens) in a hash beside it. Every call from Lua costs
Redis a few µs, a good part of a script's time, so the scripts make few: the totals are written
once per script, and both keys' expiry is pushed to two windows ahead only when it is less than
one window away (the hash's `exp` says when).
"""

from __future__ import annotations

# KEYS[1] a key's log, KEYS[2] its totals (n requests, tok tokens, exp); ARGV[1] the window in
# ms. Trims what left the window; locals now, window, n, tok, and save(), which writes the
# totals if `dirty` and keeps both keys alive a window past now.
_TRIM = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window = tonumber(ARGV[1])
local function parts(m)
  local r, k = string.match(m, ':(%d+):(%d+)$')
  return tonumber(r), tonumber(k)
end
local n, tok, exp = 0, 0, 0
local totals = redis.call('HMGET', KEYS[2], 'n', 'tok', 'exp')
if totals[1] then
  n, tok, exp = tonumber(totals[1]), tonumber(totals[2]), tonumber(totals[3] or 0)
else
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local r, k = parts(m)
    n, tok = n + r, tok + k
  end
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
for _, m in ipairs(gone) do
  local r, k = parts(m)
  n, tok = n - r, tok - k
end
local dirty = false
local function save()
  if not dirty then return end
  if exp < now + window then
    exp = now + 2 * window
    redis.call('HSET', KEYS[2], 'n', n, 'tok', tok, 'exp', exp)
    redis.call('PEXPIRE', KEYS[1], 2 * window)
    redis.call('PEXPIRE', KEYS[2], 2 * window)
  else
    redis.call('HSET', KEYS[2], 'n', n, 'tok', tok)
  end
end
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  dirty = true
  -- an empty log is deleted: the next entry makes a new one, which needs its expiry
  if n <= 0 and tok <= 0 then exp = 0 end
end
"""

# KEYS[3] spend; ARGV rpm, tpm, predicted, member, budget (-1: none) → reason, n, tok,
# retry ms (-1: never), ms until no request / no token is left in the window, spend.
_ADMIT = (
    _TRIM
    + """
local rpm, tpm, predicted = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local budget = tonumber(ARGV[6])
local spend = redis.call('GET', KEYS[3]) or '0'
local function freed_in(excess, tokens)
  local freed, start = 0, 0
  while true do
    local batch = redis.call('ZRANGE', KEYS[1], start, start + 63, 'WITHSCORES')
    if #batch == 0 then return -1 end
    for i = 1, #batch, 2 do
      local r, k = parts(batch[i])
      if tokens then freed = freed + k else freed = freed + r end
      if freed >= excess then return tonumber(batch[i + 1]) + window - now end
    end
    start = start + 64
  end
end
local reason, retry, added = '', -1, false
if budget >= 0 and tonumber(spend) >= budget then
  reason = 'budget'
elseif rpm >= 0 and n + 1 > rpm then
  reason, retry = 'rpm', freed_in(n + 1 - rpm, false)
elseif tpm >= 0 and tok + predicted > tpm then
  reason, retry = 'tpm', freed_in(tok + predicted - tpm, true)
elseif rpm >= 0 or tpm >= 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  n, tok, added, dirty = n + 1, tok + predicted, true, true
end
save()
-- -1: no such limit, or nothing of it in the window (then it is 0)
local reset_n, reset_tok, start, size = 0, 0, 0, 1
if rpm < 0 or n <= 0 then reset_n = -1 end
if tpm < 0 or tok <= 0 then reset_tok = -1 end
if added then  -- the entry just added is the newest, with a request and maybe tokens
  if reset_n == 0 then reset_n = window end
  if reset_tok == 0 and predicted > 0 then reset_tok = window end
end
while reset_n == 0 or reset_tok == 0 do  -- the newest entry has both, as a rule
  local batch = redis.call('ZREVRANGE', KEYS[1], start, start + size - 1, 'WITHSCORES')
  if #batch == 0 then break end
  for i = 1, #batch, 2 do
    local r, k = parts(batch[i])
    local left = tonumber(batch[i + 1]) + window - now
    if reset_n == 0 and r > 0 then reset_n = left end
    if reset_tok == 0 and k > 0 then reset_tok = left end
  end
  start, size = start + size, 32
end
return {reason, n, tok, retry, math.max(reset_n, 0), math.max(reset_tok, 0), spend}
"""
)

# KEYS[3] spend, KEYS[4] the soft-budget flag, KEYS[5] this settle's mark; ARGV stored member
# ('' none), its corrected name, a tokens-only name ('' not windowed), real tokens, predicted,
# cost, spend ttl ms (-1 none), soft budget usd (-1 none) → spend, 1 if this settle crossed the
# soft budget first. The mark makes a settle count once when it is sent again after a timeout.
_SETTLE = (
    _TRIM
    + """
local real, predicted = tonumber(ARGV[5]), tonumber(ARGV[6])
local score = false
if ARGV[2] ~= '' then score = redis.call('ZSCORE', KEYS[1], ARGV[2]) end
if score then
  local _, k = parts(ARGV[2])
  if k ~= real then  -- added first, so the log is never empty (and deleted) in between
    redis.call('ZADD', KEYS[1], score, ARGV[3])
    redis.call('ZREM', KEYS[1], ARGV[2])
    tok, dirty = tok + real - k, true
  end
elseif ARGV[4] ~= '' and real > predicted then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  tok, dirty = tok + real - predicted, true
end
save()
local spend
local ttl, alert = tonumber(ARGV[8]), 0
local cost = tonumber(ARGV[7])
if cost > 0 and redis.call('SET', KEYS[5], '1', 'NX', 'PX', MARK_MS) then
  spend = redis.call('INCRBYFLOAT', KEYS[3], ARGV[7])
  -- the counter keeps its expiry once set: only a new one (holding just this cost) needs it
  if ttl > 0 and tonumber(spend) <= cost * (1 + 1e-9) then
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
else
  spend = redis.call('GET', KEYS[3]) or '0'
end
local soft = tonumber(ARGV[9])
if soft >= 0 and tonumber(spend) >= soft then
  local set
  if ttl > 0 then set = redis.call('SET', KEYS[4], '1', 'NX', 'PX', ttl)
  else set = redis.call('SET', KEYS[4], '1', 'NX') end
  if set then alert = 1 end
end
return {spend, alert}
"""
)

# ARGV[2…] triples (age ms, member, the member it replaces or ''): entries written back.
_RESTORE = (
    _TRIM
    + """
for i = 2, #ARGV, 3 do
  local at = now - tonumber(ARGV[i])
  if ARGV[i + 2] ~= '' then
    local old = redis.call('ZSCORE', KEYS[1], ARGV[i + 2])
    if old then
      local r, k = parts(ARGV[i + 2])
      redis.call('ZREM', KEYS[1], ARGV[i + 2])
      n, tok, at = n - r, tok - k, tonumber(old)
    end
  end
  if at > now - window and redis.call('ZADD', KEYS[1], 'NX', at, ARGV[i + 1]) == 1 then
    local r, k = parts(ARGV[i + 1])
    n, tok = n + r, tok + k
  end
end
dirty, exp = true, 0  -- it may have emptied the log (and Redis deleted it) meanwhile
save()
return n
"""
)

# KEYS[1] a spend counter, KEYS[2] the settle's mark (if one); ARGV what the counter was known
# to hold at least, a settle's cost not yet added, ttl ms.
_RESTORE_SPEND = """
local spend = tonumber(redis.call('GET', KEYS[1]) or '0')
if spend < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
if #KEYS > 1 and redis.call('SET', KEYS[2], '1', 'NX', 'PX', MARK_MS) then
  redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
end
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
"""

# KEYS[1] replicas, KEYS[2] the data epoch; ARGV this replica, ttl ms, an epoch if none
# → replicas alive, the epoch (new when Redis lost its data).
_HEARTBEAT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('SET', KEYS[2], ARGV[3], 'NX')
return {redis.call('ZCARD', KEYS[1]), redis.call('GET', KEYS[2])}
"""

_MARK_MS = 600_000  # a settle sent again within 10 minutes counts once (a key per costed settle)
SCRIPTS = {
    name: body.replace("MARK_MS", str(_MARK_MS))
    for name, body in [("admit", _ADMIT), ("settle", _SETTLE), ("restore", _RESTORE),
                       ("restore_spend", _RESTORE_SPEND), ("heartbeat", _HEARTBEAT)]
}  # fmt: skip
