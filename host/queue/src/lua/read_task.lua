-- Reads task ARGV[3] where it lives (see `home_of`): its hash's key, its
-- fields and its retries, in one round trip.
local home = home_of(ARGV[3])
return {home, redis.call('HGETALL', home), redis.call('LRANGE', home .. ':retries', 0, -1)}
