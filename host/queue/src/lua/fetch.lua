-- Takes up to ARGV[3] tasks for CONSUMER. ARGV[4]: reclaim entries idle
-- at least this many ms first (0 = skip). ARGV[5]: starvation age in ms.
-- Order: reclaimed entries; then any lower class whose oldest waiting
-- entry is older than the starvation age (lowest first); then high,
-- normal, low.
local want = tonumber(ARGV[3])
local min_idle = tonumber(ARGV[4])
local starvation = tonumber(ARGV[5])
local now = now_us()
local now_s = string.format('%d', now)
local out = {}
local activated = 0
for _, class in ipairs(CLASSES) do need_group(stream_key(class)) end

if min_idle > 0 then
  for _, class in ipairs(CLASSES) do
    local sk = stream_key(class)
    local cursor = '0-0'
    -- XAUTOCLAIM scans COUNT entries per call; bounded so one fetch
    -- stays short even with a long pending list.
    for _ = 1, 20 do
      if want <= 0 then break end
      local r = redis.call('XAUTOCLAIM', sk, GROUP, CONSUMER, min_idle, cursor,
        'COUNT', want)
      for _, e in ipairs(r[2]) do
        local started = start_entry(sk, e[1], entry_field(e[2], 't'), entry_field(e[2], 'r'), now_s, out)
        if started >= 0 then
          want = want - 1
          activated = activated + started
        end
      end
      cursor = r[1]
      if cursor == '0-0' then break end
    end
  end
end

-- Age (ms) of the oldest entry no consumer has read yet, or -1.
local function oldest_waiting_age(sk)
  -- XINFO on a missing key (after a flush) is not a NOGROUP error, so the
  -- caller would never recreate the groups: treat it as empty instead.
  if redis.call('EXISTS', sk) == 0 then return -1 end
  local groups = redis.call('XINFO', 'GROUPS', sk)
  for _, g in ipairs(groups) do
    if entry_field(g, 'name') == GROUP then
      local last = entry_field(g, 'last-delivered-id')
      local next_entry = redis.call('XRANGE', sk, '(' .. last, '+', 'COUNT', 1)
      if #next_entry == 0 then return -1 end
      local ms = tonumber(string.match(next_entry[1][1], '^(%d+)'))
      return math.floor(now / 1000) - ms
    end
  end
  return -1
end

local order = {}
if starvation > 0 and want > 0 then
  for _, class in ipairs({'low', 'normal'}) do
    if oldest_waiting_age(stream_key(class)) > starvation then
      order[#order + 1] = class
    end
  end
end
for _, class in ipairs(CLASSES) do
  local seen = false
  for _, c in ipairs(order) do if c == class then seen = true end end
  if not seen then order[#order + 1] = class end
end

for _, class in ipairs(order) do
  if want <= 0 then break end
  local sk = stream_key(class)
  local r = redis.call('XREADGROUP', 'GROUP', GROUP, CONSUMER, 'COUNT', want,
    'STREAMS', sk, '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      local started = start_entry(sk, e[1], entry_field(e[2], 't'), entry_field(e[2], 'r'), now_s, out)
      if started >= 0 then
        want = want - 1
        activated = activated + started
      end
    end
  end
end
count_active(activated)
return out
