--[[
  Term compare-and-set: current term → current term + 1 when the current term is the expected one.
  Every owner write at an older term is refused afterwards (owner-write-3.lua).

  Input:
    KEYS[1] term                 P{p:<pchannel>}:term   (absent = 0)

    ARGV[1] expected current term

  Output:
    n > 0  the new term
    0      the current term is not the expected one: unchanged
]]
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return 0 end
return redis.call('INCR', KEYS[1])
