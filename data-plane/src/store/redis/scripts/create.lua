-- Creates an execution when its admission allows it (see `executions.rs`).
-- KEYS: record, workflow index, dispatch stream, idempotency key, burst counter, the
--   project's decisions.
-- ARGV: id, project, workflow, trigger type, meta, created at, context, retention ms,
--   request hash ('' without an Idempotency-Key), idempotency window ms, burst limit (0: none),
--   index trim bound, then the decision block (role `api`).
-- Checks idempotency, then the burst limit, then writes the record, index entry, dispatch
-- entry and idempotency key. Every check precedes the first write, so a refusal writes
-- nothing (the burst counter of a refused request excepted: it counts attempts).
-- Returns {0, burst remaining or -1} created, {1, tracking id} replayed, {2} key reused,
-- {3} rate limited.
local request = ARGV[9]
local d = decision_at(13)
local replayed = replay(KEYS[4], request)
if replayed then
  refuse(KEYS[6], d, replayed)
  return replayed
end
local remaining = burst(KEYS[5], ARGV[11])
if not remaining then
  refuse(KEYS[6], d, {3})
  return {3}
end
decide(KEYS[6], d, 'started', nil, {d.fields.api})
redis.call('HSET', KEYS[1], 'status', 'pending', 'updated', ARGV[6], 'meta', ARGV[5],
  'context', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZREMRANGEBYLEX', KEYS[2], '-', '(' .. ARGV[12])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1], 'project', ARGV[2], 'workflow', ARGV[3],
  'trigger_type', ARGV[4])
if request ~= '' then
  redis.call('SET', KEYS[4], request .. ' ' .. ARGV[1], 'PX', ARGV[10])
end
return {0, remaining}
