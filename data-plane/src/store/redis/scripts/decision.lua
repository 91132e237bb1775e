-- Routing decisions (DESIGN §13, `store/decisions.rs`), shared by the scripts that record
-- one in the same step as what it decides. A decision block in ARGV (`decision_at`): id,
-- head (the draft's JSON object, unclosed), cap, retention ms, trim bound (ids below it
-- are past the retention), the number of executions it may name, then per execution its
-- role, its entry among `events` ('' when no event started it) and its own fields
-- (`"trigger_id":…,"workflow_id":…,"execution_id":…`). An id '' records nothing (a caller
-- without a decision).
local function decision_at(o)
  local d = {id = ARGV[o], head = ARGV[o + 1], cap = tonumber(ARGV[o + 2]), ttl = ARGV[o + 3],
    trim = ARGV[o + 4], fired = {}, fields = {}}
  for i = 1, tonumber(ARGV[o + 5]) do
    local at = o + 3 + 3 * i
    d.fired[ARGV[at]] = ARGV[at + 1]
    d.fields[ARGV[at]] = ARGV[at + 2]
  end
  return d
end
-- `"name":"value"` (values are ids and names: nothing to escape).
local function member(name, value)
  return '"' .. name .. '":"' .. value .. '"'
end
-- Records `d` in `key` with `outcome`, `reason` (nil: none) and `extra` (members, encoded),
-- the `events` of the executions `fired` names that started (roles), newest first in a
-- capped, expiring set.
local function decide(key, d, outcome, reason, extra, fired)
  if d.id == '' then return end
  local parts = {d.head, member('outcome', outcome)}
  if reason then parts[#parts + 1] = member('reason', reason) end
  for _, m in ipairs(extra) do parts[#parts + 1] = m end
  local events = {}
  for _, role in ipairs(fired or {}) do
    if d.fired[role] and d.fired[role] ~= '' then events[#events + 1] = d.fired[role] end
  end
  if #events > 0 then parts[#parts + 1] = '"events":[' .. table.concat(events, ',') .. ']' end
  redis.call('ZADD', key, 0, d.id .. ' ' .. table.concat(parts, ',') .. '}')
  redis.call('ZREMRANGEBYRANK', key, 0, -(d.cap + 1))
  redis.call('PEXPIRE', key, d.ttl)
  -- One decision in 16 (a random hex digit of its id) trims those past the retention.
  if string.sub(d.id, 33, 33) == '0' then
    redis.call('ZREMRANGEBYLEX', key, '-', '(' .. d.trim)
  end
end
