-- Removes dead consumers from the group: no pending entries, idle at
-- least ARGV[3] ms, and no heartbeat newer than ARGV[4] ms. A worker
-- killed with SIGKILL never leaves by itself; once the sweeper has taken
-- its entries, this keeps `XINFO CONSUMERS` to the live ones. Also drops
-- heartbeat scores older than that. Returns how many consumers went.
local min_idle = tonumber(ARGV[3])
local cutoff = now_ms() - tonumber(ARGV[4])
local workers = P .. ':workers'
local removed = 0
local streams = {}
for _, lane in ipairs(all_lanes()) do
  for _, class in ipairs(CLASSES) do streams[#streams + 1] = stream_key(class, lane) end
end
for _, sk in ipairs(streams) do
  if redis.call('EXISTS', sk) == 1 then
    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', sk, GROUP)) do
      local name = entry_field(c, 'name')
      local pending = tonumber(entry_field(c, 'pending') or '1')
      local idle = tonumber(entry_field(c, 'idle') or '0')
      local beat = tonumber(redis.call('ZSCORE', workers, name) or '0')
      if name ~= CONSUMER and pending == 0 and idle >= min_idle and beat < cutoff then
        redis.call('XGROUP', 'DELCONSUMER', sk, GROUP, name)
        removed = removed + 1
      end
    end
  end
end
redis.call('ZREMRANGEBYSCORE', workers, '-inf', cutoff)
return removed
