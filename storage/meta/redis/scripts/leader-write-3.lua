--[[
  A leader write: applies a batch of writes to plain keys (meta group {m}) only while the writer's
  epoch is the live leadership of the election. The whole batch gets one version; written keys lose
  any lease attachment.

  Input:
    KEYS[1] leader               P{m}:leader:<name>     (HASH e = epoch, c = candidate; PX = ttl)
    KEYS[2] index                P{m}:index
    KEYS[3] version counter      P{m}:rev

    ARGV[1] writer's epoch
    ARGV[2] entry key base       P{m}:kv:
    ARGV[3] watch channel base   Pwatch:
    ARGV[4..] triples: op ('put' | 'del'), logical key, value ('' for del)

  Output:
    n > 0  the version of the batch (events published per key)
    -2     not the live leader at that epoch (expired, resigned or replaced): nothing written
]]
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch or tonumber(epoch) ~= tonumber(ARGV[1]) then return -2 end

local version = redis.call('INCR', KEYS[3])
for i = 4, #ARGV, 3 do
  local op, key = ARGV[i], ARGV[i + 1]
  local entry = ARGV[2] .. key
  if op == 'put' then
    redis.call('DEL', entry)
    redis.call('HSET', entry, 'v', ARGV[i + 2], 'r', version)
    redis.call('ZADD', KEYS[2], 0, key)
    redis.call('PUBLISH', ARGV[3] .. key, cjson.encode({ k = key, v = ARGV[i + 2], r = tostring(version) }))
  elseif redis.call('EXISTS', entry) == 1 then
    redis.call('DEL', entry)
    redis.call('ZREM', KEYS[2], key)
    redis.call('PUBLISH', ARGV[3] .. key, cjson.encode({ k = key, r = tostring(version) }))
  end
end
return version
