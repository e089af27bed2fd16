--[[
  Ends leases and deletes their keys, publishing a delete event per key. Two modes:
  - revoke: ARGV[4] = a lease id: that lease ends now (idempotent);
  - reap:   ARGV[4] = '': every lease whose deadline (Redis server time) has passed, at most ARGV[5].
  The keys of an expired lease have usually vanished already (their PX); the reaper still removes
  them from the index and tells watchers. A key overwritten since (other lease, or none) is kept.

  Input:
    KEYS[1] lease deadlines      P{m}:lease-deadlines   (ZSET id → expiry ms)
    KEYS[2] index                P{m}:index
    KEYS[3] version counter      P{m}:rev

    ARGV[1] lease base           P{m}:lease:            (lease = base..id, its keys = base..id..':keys')
    ARGV[2] entry key base       P{m}:kv:
    ARGV[3] watch channel base   Pwatch:
    ARGV[4] lease id to revoke, or '' to reap the expired ones
    ARGV[5] max leases per call (reap mode)

  Output:
    n >= 0  number of leases ended
]]
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local revokeId = ARGV[4]
local ids
if revokeId ~= '' then
  ids = { revokeId }
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowMs, 'LIMIT', 0, tonumber(ARGV[5]))
end

local ended = 0
for _, id in ipairs(ids) do
  local lease = ARGV[1] .. id
  local pttl = redis.call('PTTL', lease)
  if revokeId == '' and pttl > 0 then
    redis.call('ZADD', KEYS[1], nowMs + pttl, id) -- still alive: its deadline was stale
  else
    redis.call('DEL', lease)
    local setKey = lease .. ':keys'
    for _, key in ipairs(redis.call('SMEMBERS', setKey)) do
      local entry = ARGV[2] .. key
      local owner = redis.call('HGET', entry, 'l')
      local gone = false
      if owner == id then
        redis.call('DEL', entry)
        gone = true
      elseif not owner and redis.call('EXISTS', entry) == 0 and redis.call('ZSCORE', KEYS[2], key) then
        gone = true -- expired by its PX; still indexed, so nobody has reported it yet
      end
      if gone then
        redis.call('ZREM', KEYS[2], key)
        local version = redis.call('INCR', KEYS[3])
        redis.call('PUBLISH', ARGV[3] .. key, cjson.encode({ k = key, r = tostring(version) }))
      end
    end
    redis.call('DEL', setKey)
    redis.call('ZREM', KEYS[1], id)
    ended = ended + 1
  end
end
return ended
