--[[
  Leader election: becomes the leader when nobody holds the election, with a new epoch (the epoch
  counter never expires, so epochs only grow).

  Input:
    KEYS[1] leader               P{m}:leader:<name>        (HASH e = epoch, c = candidate; PX = ttl)
    KEYS[2] epoch counter        P{m}:leader-epoch:<name>

    ARGV[1] candidate id
    ARGV[2] ttl ms

  Output:
    n > 0  elected with epoch n
    0      someone holds the election
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'e', epoch, 'c', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return epoch
