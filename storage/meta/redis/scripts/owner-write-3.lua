--[[
  The storage fence (ARCHITECTURE §6): applies a batch of writes to one pchannel's owner data only if
  the writer's term is the pchannel's current term. All keys are in the pchannel's group {p:<name>}.
  The whole batch gets one version.

  Input:
    KEYS[1] term                 P{p:<pchannel>}:term   (absent = 0)
    KEYS[2] index                P{p:<pchannel>}:index
    KEYS[3] version counter      P{p:<pchannel>}:rev

    ARGV[1] writer's term
    ARGV[2] entry key base       P{p:<pchannel>}:kv:    (entry = base..key)
    ARGV[3] watch channel base   Pwatch:
    ARGV[4..] triples: op ('put' | 'del'), logical key, value ('' for del)

  Output:
    n > 0  the version of the batch (events published per key)
    -1     stale term (the current term differs): nothing written
]]
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return -1 end

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
