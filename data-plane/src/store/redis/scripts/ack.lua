-- A runner acknowledges an execution delivered to it (see `claims.rs`).
-- KEYS: record, dispatch stream of its shard. ARGV: runner, now.
-- Returns {0} not found, {1} not this runner's, {2} acked (again or for the first time).
local held = redis.call('HMGET', KEYS[1], 'runner', 'claim', 'acked')
if not held[2] then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
  return {1}
end
if held[1] ~= ARGV[1] then return {1} end
if held[3] then return {2} end
local space = string.find(held[2], ' ', 1, true)
redis.call('XACK', KEYS[2], string.sub(held[2], 1, space - 1), string.sub(held[2], space + 1))
redis.call('HSET', KEYS[1], 'acked', ARGV[2])
redis.call('HDEL', KEYS[1], 'lease')
return {2}
