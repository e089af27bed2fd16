--[[
  Extends a leadership by ttl ms, only if it is still held at the given epoch.

  Input:
    KEYS[1] leader               P{m}:leader:<name>

    ARGV[1] epoch
    ARGV[2] ttl ms

  Output:
    1  renewed
    0  not held at that epoch (expired, resigned or replaced)
]]
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch or tonumber(epoch) ~= tonumber(ARGV[1]) then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
