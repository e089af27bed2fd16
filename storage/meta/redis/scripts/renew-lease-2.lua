--[[
  Renews a live lease and every key still attached to it by ttl ms from now; forgets keys that were
  overwritten or deleted since.

  Input:
    KEYS[1] lease                P{m}:lease:<id>        (its key set is KEYS[1]..':keys')
    KEYS[2] lease deadlines      P{m}:lease-deadlines

    ARGV[1] lease id
    ARGV[2] ttl ms
    ARGV[3] entry key base       P{m}:kv:

  Output:
    1  renewed
    0  the lease expired or was revoked (nothing changed; the holder must stop)
]]
if redis.call('PEXPIRE', KEYS[1], ARGV[2]) == 0 then return 0 end
local setKey = KEYS[1] .. ':keys'
for _, key in ipairs(redis.call('SMEMBERS', setKey)) do
  local entry = ARGV[3] .. key
  if redis.call('HGET', entry, 'l') == ARGV[1] then
    redis.call('PEXPIRE', entry, ARGV[2])
  else
    redis.call('SREM', setKey, key)
  end
end
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], nowMs + tonumber(ARGV[2]), ARGV[1])
return 1
