-- Hands out `count` consecutive hybrid timestamps (physical ms << 18 | logical), globally
-- monotonic for every caller of this Redis: physical = max(Redis TIME, last physical), logical
-- counts up within a millisecond and moves to the next millisecond when it would overflow 2^18.
-- KEYS[1]  the TSO hash: p = last physical ms, l = next free logical
-- ARGV[1]  count, 1..262144
-- returns  { physical, first logical }
local count = tonumber(ARGV[1])
if count == nil or count < 1 or count > 262144 then
  return redis.error_reply('ERR count must be in [1, 262144]')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = tonumber(redis.call('HGET', KEYS[1], 'p') or '0')
local l = tonumber(redis.call('HGET', KEYS[1], 'l') or '0')
if now > p then
  p = now
  l = 0
end
if l + count > 262144 then
  p = p + 1
  l = 0
end
redis.call('HSET', KEYS[1], 'p', p, 'l', l + count)
return { p, l }
