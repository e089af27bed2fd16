--[[
  Writes one plain key (meta group {m}): unconditionally or only at an expected version, and
  optionally attached to a lease (the entry then carries the lease's remaining PX and is listed in
  the lease's key set, so renew extends it and the reaper deletes it).

  Input:
    KEYS[1] entry key            P{m}:kv:<key>          (HASH v, r, l)
    KEYS[2] index                P{m}:index             (ZSET of logical keys)
    KEYS[3] version counter      P{m}:rev

    ARGV[1] logical key
    ARGV[2] value
    ARGV[3] expected version: -1 = any, 0 = must be absent, n > 0 = must be at version n
    ARGV[4] lease id, or '' for none
    ARGV[5] lease base           P{m}:lease:            (lease = base..id, its keys = base..id..':keys')
    ARGV[6] watch channel base   Pwatch:

  Output:
    n > 0  the key's new version (a change event is published on base..key)
    0      version mismatch: nothing written
    -3     the lease expired or was revoked (checked first): nothing written
]]
local entry = KEYS[1]
local key = ARGV[1]

local leaseId = ARGV[4]
local ttl = 0
if leaseId ~= '' then
  ttl = redis.call('PTTL', ARGV[5] .. leaseId)
  if ttl <= 0 then return -3 end
end

local expected = tonumber(ARGV[3])
if expected >= 0 then
  local current = redis.call('HGET', entry, 'r')
  if expected == 0 then
    if current then return 0 end
  elseif not current or tonumber(current) ~= expected then
    return 0
  end
end

local version = redis.call('INCR', KEYS[3])
redis.call('DEL', entry) -- drops an earlier lease attachment and its TTL
if leaseId ~= '' then
  redis.call('HSET', entry, 'v', ARGV[2], 'r', version, 'l', leaseId)
  redis.call('PEXPIRE', entry, ttl)
  redis.call('SADD', ARGV[5] .. leaseId .. ':keys', key)
else
  redis.call('HSET', entry, 'v', ARGV[2], 'r', version)
end
redis.call('ZADD', KEYS[2], 0, key)
redis.call('PUBLISH', ARGV[6] .. key, cjson.encode({ k = key, v = ARGV[2], r = tostring(version) }))
return version
