--[[
  Version counter +1 and a notification to its watchers in the same atomic step.

  Input:
    KEYS[1] version counter      P{m}:version:<name>

    ARGV[1] pub/sub channel      Pversion:<name>

  Output:
    n > 0  the new version
]]
local version = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], tostring(version))
return version
