--[[
  Opens a pchannel for writing at a term (the storage fence, ARCHITECTURE §6): the term becomes the
  pchannel's current term if it is not below it, and the open gets a new epoch, so that every writer
  of an earlier open — an older term, or an earlier open at the same term — is refused from now on
  (append-2.lua, truncate-2.lua). Read-only opens never run this script.

  Input:
    KEYS[1] term                 P{p:<pchannel>}:term   HASH term, epoch (absent = never opened rw)

    ARGV[1] the opening writer's term (integer >= 0)

  Output:
    n > 0  the new epoch of the pchannel (this open's identity)
    -1     the requested term is below the current term: nothing changed
]]
local current = tonumber(redis.call('HGET', KEYS[1], 'term') or '-1')
local term = tonumber(ARGV[1])
if term < current then return -1 end
redis.call('HSET', KEYS[1], 'term', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'epoch', 1)
