--[[
  Appends one batch (one group commit) to a pchannel's stream if the writer still owns the pchannel:
  its term is the current term and its open is the latest (epoch). Either every record is added, in
  order, or — when fenced — none. Records are opaque bytes (binary-safe); each is one stream entry
  with the single field `d`.

  Input:
    KEYS[1] term                 P{p:<pchannel>}:term     HASH term, epoch
    KEYS[2] stream               P{p:<pchannel>}:stream

    ARGV[1] writer's term
    ARGV[2] writer's epoch (from open-1.lua)
    ARGV[3..] the records, in order

  Output:
    array  the stream ids (`ms-seq`) of the records, in order (empty for an empty batch)
    -1     stale term (the current term differs): nothing written
    -2     superseded by a newer rw open at the same term: nothing written
]]
local state = redis.call('HMGET', KEYS[1], 'term', 'epoch')
if state[1] ~= ARGV[1] then return -1 end
if state[2] ~= ARGV[2] then return -2 end

local ids = {}
for i = 3, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[2], '*', 'd', ARGV[i])
end
return ids
