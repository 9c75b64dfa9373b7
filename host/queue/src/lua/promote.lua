-- Moves up to ARGV[3] due retries from the delayed set to their streams.
local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now_ms(), 'LIMIT', 0,
  tonumber(ARGV[3]))
for _, tid in ipairs(due) do
  redis.call('ZREM', DELAYED, tid)
  local tk = home_of(tid)
  if redis.call('HGET', tk, 'status') == 'queued' then
    enqueue(tid, tk)
  end
end
if #due > 0 and lane_mode() then ring() end
return #due
