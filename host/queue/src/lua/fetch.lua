-- Takes up to ARGV[3] tasks for CONSUMER. ARGV[4]: reclaim entries idle
-- at least this many ms first (0 = skip). ARGV[5]: starvation age in ms.
-- Order: reclaimed entries; then any lower class whose oldest waiting
-- entry is older than the starvation age (lowest first); then high,
-- normal, low. Within a class the lanes with work take turns, each at
-- most its cap less what it runs (docs/conventions/queue.md, "Lanes").
-- Returns {deliveries (8 strings each, see start_entry), 1 when a lane's
-- stream had lost its group (skipped: the caller regroups) else 0}.
local want = tonumber(ARGV[3])
local min_idle = tonumber(ARGV[4])
local starvation = tonumber(ARGV[5])
local now = now_us()
local now_s = string.format('%d', now)
local out = {}
local activated = 0
local regroup = 0
for _, class in ipairs(CLASSES) do need_group(stream_key(class)) end

-- Starts the entries of an XREADGROUP or XAUTOCLAIM reply; returns how
-- many became deliveries.
local function start_all(sk, entries)
  local n = 0
  for _, e in ipairs(entries) do
    local started = start_entry(sk, e[1], entry_field(e[2], 't'), entry_field(e[2], 'r'), now_s, out)
    if started >= 0 then
      n = n + 1
      activated = activated + started
    end
  end
  want = want - n
  return n
end

-- A named lane's stream without its group fails alone: skipped (false),
-- and the caller regroups (nothing was written for it). Else true and
-- the reply.
local function lane_call(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'NOGROUP', 1, true) then
      regroup = 1
      return false
    end
    error(r)
  end
  return true, r
end

local function reclaim(sk)
  local cursor = '0-0'
  -- XAUTOCLAIM scans COUNT entries per call; bounded so one fetch
  -- stays short even with a long pending list.
  for _ = 1, 20 do
    if want <= 0 then break end
    local ok, r = lane_call('XAUTOCLAIM', sk, GROUP, CONSUMER, min_idle, cursor, 'COUNT', want)
    if not ok then break end
    start_all(sk, r[2])
    cursor = r[1]
    if cursor == '0-0' then break end
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

-- The class order: starving lower classes (in any of `lanes`) first.
local function class_order(lanes)
  local order = {}
  if starvation > 0 and want > 0 then
    for _, class in ipairs({'low', 'normal'}) do
      for _, lane in ipairs(lanes) do
        if oldest_waiting_age(stream_key(class, lane)) > starvation then
          order[#order + 1] = class
          break
        end
      end
    end
  end
  for _, class in ipairs(CLASSES) do
    local seen = false
    for _, c in ipairs(order) do if c == class then seen = true end end
    if not seen then order[#order + 1] = class end
  end
  return order
end

if not lane_mode() then
  -- The default lane alone, uncapped: the hot path.
  if min_idle > 0 then
    for _, class in ipairs(CLASSES) do reclaim(stream_key(class)) end
  end
  for _, class in ipairs(class_order({''})) do
    if want <= 0 then break end
    local sk = stream_key(class)
    local r = redis.call('XREADGROUP', 'GROUP', GROUP, CONSUMER, 'COUNT', want,
      'STREAMS', sk, '>')
    if r then start_all(sk, r[1][2]) end
  end
  count_active(activated)
  return {out, regroup}
end

if min_idle > 0 then
  for _, lane in ipairs(all_lanes()) do
    for _, class in ipairs(CLASSES) do reclaim(stream_key(class, lane)) end
  end
end

-- Room per capped lane: its cap less its running (pending) entries,
-- which heals by itself when a worker dies.
local room = {}
local caps = redis.call('HGETALL', LANE_CAPS)
for k = 1, #caps, 2 do
  local lane = caps[k]
  local used = 0
  for _, class in ipairs(CLASSES) do
    local ok, p = lane_call('XPENDING', stream_key(class, lane), GROUP)
    if ok then used = used + p[1] end
  end
  room[lane] = math.max(tonumber(caps[k + 1]) - used, 0)
end

-- Lanes that may have work and room, from a rotating start so that the
-- lanes served first (and the shares' leftovers) change every fetch.
local waiting = redis.call('SMEMBERS', LANES_WAITING)
table.sort(waiting)
table.insert(waiting, 1, '')
local open = {}
for _, lane in ipairs(waiting) do
  if room[lane] == nil or room[lane] > 0 then open[#open + 1] = lane end
end
local lanes = {}
if #open > 0 then
  local first = redis.call('INCR', LANE_TURN) % #open
  for k = 1, #open do lanes[k] = open[(first + k - 1) % #open + 1] end
end

-- Classes each lane was found without undelivered entries in.
local drained = {}
for _, class in ipairs(class_order(lanes)) do
  if want <= 0 then break end
  local active = {}
  for _, lane in ipairs(lanes) do
    if room[lane] == nil or room[lane] > 0 then active[#active + 1] = lane end
  end
  -- Each round shares what is left among the lanes that filled their
  -- share in the last one; entries of ended tasks are dropped unserved,
  -- hence the bound.
  for _ = 1, 8 do
    if want <= 0 or #active == 0 then break end
    local share = math.ceil(want / #active)
    local again = {}
    for _, lane in ipairs(active) do
      if want <= 0 then break end
      local q = math.min(share, want, room[lane] or want)
      local sk = stream_key(class, lane)
      local ok, r = lane_call('XREADGROUP', 'GROUP', GROUP, CONSUMER, 'COUNT', q, 'STREAMS', sk, '>')
      -- An empty read replies nil (false here).
      local entries = ok and r and r[1][2] or {}
      local n = start_all(sk, entries)
      if room[lane] then room[lane] = room[lane] - n end
      if ok and #entries < q then
        drained[lane] = (drained[lane] or 0) + 1
      elseif ok and (room[lane] == nil or room[lane] > 0) then
        again[#again + 1] = lane
      end
    end
    active = again
  end
end
-- A lane found empty in every class has no work until an entry is added
-- (add_entry and regroup.lua mark it again).
for lane, n in pairs(drained) do
  if n == #CLASSES and lane ~= '' then redis.call('SREM', LANES_WAITING, lane) end
end
count_active(activated)
return {out, regroup}
