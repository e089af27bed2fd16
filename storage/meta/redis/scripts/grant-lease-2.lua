--[[
  Creates a lease: a key with PX = ttl, and its deadline (Redis server time) for the reaper.

  Input:
    KEYS[1] lease                P{m}:lease:<id>
    KEYS[2] lease deadlines      P{m}:lease-deadlines   (ZSET id → expiry ms)

    ARGV[1] lease id
    ARGV[2] ttl ms

  Output:
    1  granted
    0  a lease with this id exists (ids come from a sequence, so this means a bug)
]]
if not redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[2], 'NX') then return 0 end
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], nowMs + tonumber(ARGV[2]), ARGV[1])
return 1
