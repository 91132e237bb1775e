-- Resumes a waiting execution (DESIGN §12, see `executions.rs`).
-- KEYS: record, events, the project's decisions. ARGV: shard base, tracking id, now, the
-- `resumed` event, whether there is an input ('1'/'0'), the input, the number of variables,
-- their names and raw JSON values in pairs, then the decision block. Variables are record
-- fields `v:<name>` (the latest per name; merged into `vars` when read). Returns {0} not
-- found, {1, status} not waiting, {2} done.
local held = redis.call('HMGET', KEYS[1], 'status', 'runner')
if not held[1] then return {0} end
local d = decision_at(8 + 2 * tonumber(ARGV[7]))
local extra = {member('execution_id', ARGV[2])}
if held[1] ~= 'waiting' then
  decide(KEYS[3], d, 'refused', 'not_waiting', extra)
  return {1, held[1]}
end
decide(KEYS[3], d, 'delivered', nil, extra)
local now = ARGV[3]
redis.call('HSET', KEYS[1], 'status', 'running', 'updated', now)
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'input', ARGV[6]) end
for i = 8, 7 + 2 * tonumber(ARGV[7]), 2 do
  redis.call('HSET', KEYS[1], 'v:' .. ARGV[i], ARGV[i + 1])
end
redis.call('RPUSH', KEYS[2], '{"at":' .. now ..
  ',"from":"waiting","to":"running","type":"status_changed"}', ARGV[4])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
if held[2] then
  redis.call('XADD', ARGV[1] .. 'r:' .. held[2], 'MAXLEN', '~', 10000, '*', 'id', ARGV[2],
    'message', ARGV[4])
end
return {2}
