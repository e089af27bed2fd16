--[[
  Deletes one plain key (meta group {m}), unconditionally or only at an expected version.

  Input:
    KEYS[1] entry key            P{m}:kv:<key>
    KEYS[2] index                P{m}:index
    KEYS[3] version counter      P{m}:rev

    ARGV[1] logical key
    ARGV[2] expected version: -1 = any, n > 0 = must be at version n
    ARGV[3] watch channel base   Pwatch:

  Output:
    n > 0  the version of the deletion (a delete event is published)
    0      absent or version mismatch: nothing deleted
]]
local current = redis.call('HGET', KEYS[1], 'r')
if not current then return 0 end -- (an expired lease key stays in the index for the reaper's event)
local expected = tonumber(ARGV[2])
if expected >= 0 and tonumber(current) ~= expected then return 0 end

local key = ARGV[1]
local version = redis.call('INCR', KEYS[3])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], key)
redis.call('PUBLISH', ARGV[3] .. key, cjson.encode({ k = key, r = tostring(version) }))
return version
