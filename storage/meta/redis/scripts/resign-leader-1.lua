--[[
  Gives up a leadership, only if it is still held at the given epoch.

  Input:
    KEYS[1] leader               P{m}:leader:<name>

    ARGV[1] epoch

  Output:
    1  resigned
    0  not held at that epoch (nothing changed)
]]
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch or tonumber(epoch) ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
