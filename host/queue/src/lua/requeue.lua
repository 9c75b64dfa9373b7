-- Moves dead-lettered tasks back to their streams with fresh attempts.
-- ARGV[3]: a DLQ entry id; or 'upto', then ARGV[4]: the newest entry id
-- to take and ARGV[5]: the most entries to take, oldest first (one batch
-- of a requeue-all: queue/admin.rs). Each entry leaves the DLQ in the
-- step that requeues its task, so a batch run again after an
-- interruption finds only what is left. Returns {requeued, entries taken}.
local entries
if ARGV[3] == 'upto' then
  entries = redis.call('XRANGE', DLQ, '-', ARGV[4], 'COUNT', tonumber(ARGV[5]))
else
  entries = redis.call('XRANGE', DLQ, ARGV[3], ARGV[3])
end
local n = 0
-- Tasks that hold again, per set: one SADD each at the end.
local joins = {}
for _, e in ipairs(entries) do
  local tid = entry_field(e[2], 'task_id')
  local tk = home_of(tid or '')
  local h = tid and redis.call('HMGET', tk, 'status', 'spec', 'holds', 'record')
  if h and h[1] == 'failed' then
    -- A hosted task's `error` is its record's: it goes too.
    redis.call('HDEL', tk, 'error', 'task_error', 'error_code', 'finished_at_ms',
      'worker', 'progress', 'next_attempt_at_ms', 'cancel_requested')
    -- enqueue(), with the fields read above.
    local _, _, class, _, _, _, _, lane = parse_spec(spec_of(tk, h[2]))
    local eid = add_entry(class or 'normal', tid, tk, lane)
    redis.call('HSET', tk, 'status', 'queued', 'entry', eid, 'attempts', 0)
    if h[3] and h[3] ~= '' then
      local list = list_of(joins, h[3])
      list[#list + 1] = tid
    end
    if h[4] and h[4] ~= '' then
      redis.call('HSET', h[4], 'status', 'queued')
      redis.call('HDEL', h[4], 'error', 'finished_at_ms')
    end
    n = n + 1
  end
end
for holds, tids in pairs(joins) do call_batched('SADD', holds, tids) end
if ARGV[3] == 'upto' then
  drop_dlq_head(entries)
elseif #entries > 0 then
  redis.call('XDEL', DLQ, ARGV[3])
end
if n > 0 then
  redis.call('HINCRBY', COUNTERS, 'tasks_requeued', n)
  if lane_mode() then ring() end
end
return {n, #entries}
