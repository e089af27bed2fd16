--[[
  Removes the entries below a stream id (XTRIM MINID, exact) if the writer still owns the pchannel,
  with the same fence as append-2.lua.

  Input:
    KEYS[1] term                 P{p:<pchannel>}:term     HASH term, epoch
    KEYS[2] stream               P{p:<pchannel>}:stream

    ARGV[1] writer's term
    ARGV[2] writer's epoch (from open-1.lua)
    ARGV[3] lowest stream id to keep (`ms-seq`): every entry with a smaller id is removed

  Output:
    n >= 0 the number of entries removed
    -1     stale term: nothing removed
    -2     superseded by a newer rw open at the same term: nothing removed
]]
local state = redis.call('HMGET', KEYS[1], 'term', 'epoch')
if state[1] ~= ARGV[1] then return -1 end
if state[2] ~= ARGV[2] then return -2 end
return redis.call('XTRIM', KEYS[2], 'MINID', ARGV[3])
