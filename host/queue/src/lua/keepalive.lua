-- Refreshes CONSUMER's claims so no sweeper takes a task it still runs,
-- and records its heartbeat. ARGV[3]: heartbeat TTL in ms, ARGV[4]: the
-- heartbeat JSON, then triples of stream key, entry id, task id.
-- Returns two lists: task ids this consumer no longer owns (lost), and
-- task ids whose cancellation was requested.
local now = now_ms()
local lost, cancel = {}, {}
for i = 5, #ARGV, 3 do
  local sk, eid, tid = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local p = redis.call('XPENDING', sk, GROUP, eid, eid, 1)
  local tk = home_of(tid)
  local h = redis.call('HMGET', tk, 'cancel_requested', 'status', 'worker', 'entry')
  if #p == 1 and p[1][2] == CONSUMER then
    redis.call('XCLAIM', sk, GROUP, CONSUMER, 0, eid, 'JUSTID')
  elseif #p == 0 and h[2] == 'running' and h[3] == CONSUMER and h[4] == eid then
    -- Pending to no one, yet the task runs here: its group was made
    -- again (by hand, from an earlier id). Claimed back, not stopped.
    redis.call('XCLAIM', sk, GROUP, CONSUMER, 0, eid, 'FORCE', 'JUSTID')
  else
    lost[#lost + 1] = tid
  end
  if h[1] == '1' then
    cancel[#cancel + 1] = tid
  end
end
redis.call('SET', P .. ':worker:' .. CONSUMER, ARGV[4], 'PX', ARGV[3])
redis.call('ZADD', P .. ':workers', now, CONSUMER)
return {lost, cancel}
