"""The Lua scripts that keep ``limits.py``'s rules in Redis: one call each, so reading, deciding
and counting are atomic across every process that shares the Redis.

The window's time is Redis's own ``TIME`` (hosts with skewed clocks agree on it); a budget's
period is named by the caller, from its clock, in the counter's key, with the counter's time to
live (to the period's end and a grace after).
"""

from __future__ import annotations

# KEYS: requests hash, tokens hash, day counter, month counter.
# ARGV: rpm, tpm, window seconds, reservation, day budget, month budget, day ttl, month ttl
# (a limit of 0: the key has none, its key is not touched).
# Returns {seconds, microseconds, requests, tokens, day tokens, month tokens, admitted}: the
# buckets as flat [second, count, ...] lists and the budgets' counts as they were before this
# request.
ADMIT_LUA = """
redis.replicate_commands()
local window = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1])
local admitted = 1
local function load(key)
  local flat = redis.call('HGETALL', key)
  local live, stale, total = {}, {}, 0
  for i = 1, #flat, 2 do
    local second, count = tonumber(flat[i]), tonumber(flat[i + 1])
    if now - second >= window then
      stale[#stale + 1] = flat[i]
    else
      live[#live + 1] = second
      live[#live + 1] = count
      total = total + count
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  return live, total
end
local function budget(i, limit)
  if limit <= 0 then return 0 end
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used >= limit then admitted = 0 end
  return used
end
local rpm, tpm, reserve = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local limits = {0, 0, tonumber(ARGV[5]), tonumber(ARGV[6])}
local requests, tokens = {}, {}
if rpm > 0 then
  local total
  requests, total = load(KEYS[1])
  if total + 1 > rpm then admitted = 0 end
end
if tpm > 0 then
  local total
  tokens, total = load(KEYS[2])
  if total >= tpm then admitted = 0 end
end
local day, month = budget(3, limits[3]), budget(4, limits[4])
if admitted == 1 then
  if rpm > 0 then
    redis.call('HINCRBY', KEYS[1], now, 1)
    redis.call('EXPIRE', KEYS[1], window + 1)
  end
  if tpm > 0 and reserve > 0 then
    redis.call('HINCRBY', KEYS[2], now, reserve)
    redis.call('EXPIRE', KEYS[2], window + 1)
  end
  for i = 3, 4 do
    local ttl = tonumber(ARGV[i + 4])
    if limits[i] > 0 and ttl > 0 then
      redis.call('INCRBY', KEYS[i], reserve)
      redis.call('EXPIRE', KEYS[i], ttl)
    end
  end
end
return {time[1], time[2], requests, tokens, day, month, admitted}
"""

# KEYS: tokens hash, day counter, month counter (of the reservation's periods).
# ARGV: the reservation's bucket (-1: no tpm), used - reserved, window seconds, day ttl,
# month ttl (0: no such budget, or its counter is gone).
# Returns {day tokens, month tokens} after settling (-1: not counted).
SETTLE_LUA = """
redis.replicate_commands()
local time_s = redis.call('TIME')[1]
local now = tonumber(time_s)
local second, change, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if second >= 0 and change ~= 0 then
  local count = redis.call('HGET', KEYS[1], ARGV[1])
  if count and now - second < window then
    local left = tonumber(count) + change
    if left > 0 then
      redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', left))
    else
      redis.call('HDEL', KEYS[1], ARGV[1])
    end
  elseif change > 0 then
    redis.call('HINCRBY', KEYS[1], time_s, change)
    redis.call('EXPIRE', KEYS[1], window + 1)
  end
end
local totals = {}
for i = 2, 3 do
  local ttl, total = tonumber(ARGV[i + 2]), -1
  if ttl > 0 then
    local count = redis.call('GET', KEYS[i])
    if count then
      total = math.max(0, tonumber(count) + change)
      redis.call('SET', KEYS[i], string.format('%d', total), 'KEEPTTL')
    elseif change > 0 then
      total = change
      redis.call('SET', KEYS[i], string.format('%d', total), 'EX', ttl)
    end
  end
  totals[#totals + 1] = total
end
return totals
"""
