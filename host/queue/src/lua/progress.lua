-- Progress of running tasks: pairs of task id, value. A finished task
-- keeps its final value, so a late write cannot undo completion.
local n = 0
for i = 3, #ARGV, 2 do
  local tk = home_of(ARGV[i])
  if redis.call('HGET', tk, 'status') == 'running' then
    redis.call('HSET', tk, 'progress', ARGV[i + 1])
    record_set(tk, 'progress', ARGV[i + 1])
    n = n + 1
  end
end
return n
