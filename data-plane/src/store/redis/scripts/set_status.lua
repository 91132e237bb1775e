-- Moves a record to ARGV[1] when its status is one of ARGV[3] (space separated) and
-- appends the status_changed event (`store::events`); the event list lives as long as the
-- record.
-- An execution becoming `waiting` enters its shard's waiting set, for the waiting timeout
-- (`timeout.lua`; entries of executions that moved on are dropped when their time comes).
-- KEYS: record, events, the shard's waiting set. ARGV: new status, now, allowed current
-- statuses, tracking id.
-- Returns {0} not found, {1, current} not allowed from current, {2} done.
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {0} end
if not string.find(' ' .. ARGV[3] .. ' ', ' ' .. current .. ' ', 1, true) then
  return {1, current}
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated', ARGV[2])
redis.call('RPUSH', KEYS[2], '{"at":' .. ARGV[2] .. ',"from":"' .. current .. '","to":"' ..
  ARGV[1] .. '","type":"status_changed"}')
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
if ARGV[1] == 'waiting' then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4]) end
return {2}
